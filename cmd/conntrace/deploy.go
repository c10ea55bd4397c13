// SPDX-License-Identifier: Apache-2.0

package main

import (
	"os"
	"path/filepath"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/conntrace/conntrace/cmd/conntrace/deploy"
	"github.com/conntrace/conntrace/tracer"
)

// defaultImage is what `make image` tags.
const defaultImage = "localhost/conntrace:latest"

func deployCommand() *cli.Command {
	print := func(data []byte) cli.ActionFunc {
		return func(c *cli.Context) error {
			if err := noArgs(c, ""); err != nil {
				return err
			}
			_, err := c.App.Writer.Write(data)
			return err
		}
	}
	return &cli.Command{
		Name:  "deploy",
		Usage: "print what runs conntrace serve on a fleet: a Kubernetes manifest, a systemd unit, alerting rules, a dashboard",
		Description: `Each subcommand prints to stdout; nothing is installed or applied.
tracer/metrics/README.md and cmd/conntrace/deploy/README.md explain them.`,
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown deploy target %q (want kubernetes, systemd, rules or dashboard)", c.Args().First())
			}
			return cli.ShowSubcommandHelp(c)
		},
		Subcommands: []*cli.Command{
			{
				Name:  "kubernetes",
				Usage: "a Namespace, ServiceAccount and privileged DaemonSet running serve on every node (kubectl apply -f -)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "namespace", Value: "conntrace", Usage: "the `NAMESPACE` to create and deploy in"},
					&cli.StringFlag{Name: "image", Value: defaultImage, Usage: "the conntrace `IMAGE` (make image builds one; push it where the nodes pull from)"},
					&cli.StringFlag{Name: "port", Value: strconv.Itoa(int(defaultPort())), Usage: "serve's `PORT` on each node"},
					&cli.BoolFlag{Name: "podmonitor", Usage: "add a PodMonitor for the Prometheus operator"},
				},
				OnUsageError: onUsageError,
				Action: func(c *cli.Context) error {
					if err := noArgs(c, ""); err != nil {
						return err
					}
					port, err := parsePort("--port", c.String("port"))
					if err != nil {
						return err
					}
					k := deploy.Kubernetes{Namespace: c.String("namespace"), Image: c.String("image"), Port: port, PodMonitor: c.Bool("podmonitor")}
					if err := k.Check(); err != nil {
						return usageError{err}
					}
					return deploy.WriteKubernetes(c.App.Writer, k)
				},
			},
			{
				Name:  "systemd",
				Usage: "a hardened systemd unit running serve",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "binary", Usage: "the installed conntrace, an absolute `PATH`", DefaultText: "this conntrace's own path (/usr/bin/conntrace from the .deb, /usr/local/bin/conntrace from make install)"},
					&cli.StringFlag{Name: "listen", Value: defaultListen, Usage: "serve's --listen `ADDR`"},
				},
				OnUsageError: onUsageError,
				Action: func(c *cli.Context) error {
					if err := noArgs(c, ""); err != nil {
						return err
					}
					if err := checkListen(c.String("listen")); err != nil {
						return err
					}
					var caps []string
					for _, cp := range tracer.UsedCapabilities {
						caps = append(caps, cp.String())
					}
					binary := c.String("binary")
					if !c.IsSet("binary") {
						binary = installedBinary()
					}
					s := deploy.Systemd{Binary: binary, Listen: c.String("listen"), Capabilities: caps}
					if err := s.Check(); err != nil {
						return usageError{err}
					}
					return deploy.WriteSystemd(c.App.Writer, s)
				},
			},
			{Name: "rules", Usage: "Prometheus alerting rules: ephemeral ports over 80%, EADDRNOTAVAIL, lost events", OnUsageError: onUsageError, Action: print(deploy.Rules)},
			{Name: "dashboard", Usage: "a Grafana dashboard (JSON) of serve's metrics", OnUsageError: onUsageError, Action: print(deploy.Dashboard)},
		},
	}
}

// installedBinary is where the unit finds conntrace: this executable's
// own path when it is an installed conntrace (the .deb's /usr/bin, make
// install's /usr/local/bin, or anywhere else), else make install's.
func installedBinary() string {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil || filepath.Base(exe) != "conntrace" || deploy.CheckBinary(exe) != nil {
		return "/usr/local/bin/conntrace"
	}
	return exe
}

// defaultPort is defaultListen's port.
func defaultPort() uint16 {
	p, _ := strconv.Atoi(portOf(defaultListen))
	return uint16(p)
}
