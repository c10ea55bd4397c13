// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/dns"
	"github.com/conntrace/conntrace/tracer/output"
)

// The flags several commands share, defined once, and their parsers. Every
// value is read here, not by urfave/cli, so that a bad one is reported in
// the flag's own terms: the flag, the value, what is accepted. Numbers are
// decimal, as every network tool reads them: no octal, no hex.

func portFlag(usage string) cli.Flag {
	return &cli.StringSliceFlag{Name: "port", Aliases: []string{"P"}, Usage: usage}
}

func pidFlag(usage string) cli.Flag {
	return &cli.StringSliceFlag{Name: "pid", Aliases: []string{"p"}, Usage: usage}
}

func outputFlag() cli.Flag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "output `FORMAT`: text or json (one object per line)"}
}

func durationFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "duration", Aliases: []string{"d"}, Usage: usage, DefaultText: "until Ctrl-C"}
}

func readyFileFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "ready-file", Usage: usage + "; removed when the run ends (for scripts)"}
}

// maxPID is the kernel's limit (PID_MAX_LIMIT on 64-bit).
const maxPID = 1 << 22

// parseDecimal reads s as a decimal number from lo to hi: digits only,
// no sign, no leading zero (is 010 ten or eight?).
func parseDecimal(s string, lo, hi uint64) (uint64, bool) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n >= lo && n <= hi
}

// parsePort reads one port, as flag (or argument) name says it.
func parsePort(name, s string) (uint16, error) {
	n, ok := parseDecimal(s, 1, 65535)
	if !ok {
		return 0, usagef("%s %q: want a port number from 1 to 65535, in decimal", name, s)
	}
	return uint16(n), nil
}

// parsePortsPIDs reads --port and --pid: repeatable, comma-separated.
func parsePortsPIDs(c *cli.Context) (ports []uint16, pids []uint32, err error) {
	for _, s := range c.StringSlice("port") {
		p, err := parsePort("--port", s)
		if err != nil {
			return nil, nil, err
		}
		ports = append(ports, p)
	}
	for _, s := range c.StringSlice("pid") {
		n, ok := parseDecimal(s, 1, maxPID)
		if !ok {
			return nil, nil, usagef("--pid %q: want a process id from 1 to %d, in decimal", s, maxPID)
		}
		pids = append(pids, uint32(n))
	}
	return ports, pids, nil
}

// parseComms reads --comm: repeatable, comma-separated, exact names.
func parseComms(c *cli.Context) ([]string, error) {
	var names []string
	for _, s := range c.StringSlice("comm") {
		if s == "" || len(s) > 15 {
			return nil, usagef("--comm %q: want a process name of 1 to 15 bytes, the kernel's limit, as in /proc/PID/comm", s)
		}
		names = append(names, s)
	}
	return names, nil
}

// parseNames reads --name: names or *.domain patterns.
func parseNames(c *cli.Context) ([]string, error) {
	names := c.StringSlice("name")
	if len(names) == 0 {
		return nil, nil
	}
	if c.Bool("tcp") && !c.Bool("udp") {
		return nil, usagef("--name needs DNS lookups, which are UDP's: not with -t")
	}
	if _, err := dns.NewFilter(names); err != nil {
		return nil, usagef("--name %v", err)
	}
	return names, nil
}

func containerFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "container", Usage: "only processes in container `NAME` or ID (an id prefix of 12 hex digits or more), also one that starts later (repeatable, or comma-separated)"}
}

func cgroupFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "cgroup", Usage: "only processes in cgroup v2 `PATH` (as in /proc/PID/cgroup) or below it (repeatable, or comma-separated)"}
}

// parseContainers reads --container and --cgroup. A container name that
// matches nothing yet is fine (it may start later); a cgroup must exist.
func parseContainers(c *cli.Context) (names, cgroups []string, err error) {
	for _, s := range c.StringSlice("container") {
		if s == "" || len(s) > 253 || strings.ContainsRune(s, '/') || strings.ContainsFunc(s, isControl) {
			return nil, nil, usagef("--container %q: want a container name, or an id or id prefix of 12 hex digits or more", s)
		}
		names = append(names, s)
	}
	cgs := c.StringSlice("cgroup")
	if len(cgs) == 0 {
		return names, nil, nil
	}
	mount, err := containers.Mount()
	if err != nil {
		return nil, nil, usagef("--cgroup: %v", err)
	}
	for _, s := range cgs {
		if s == "" || strings.ContainsFunc(s, isControl) || !containers.Exists(mount, s) {
			return nil, nil, usagef("--cgroup %q: no such cgroup in %s (want a path as in /proc/PID/cgroup, e.g. /system.slice/nginx.service)", s, mount)
		}
		cgroups = append(cgroups, s)
	}
	return names, cgroups, nil
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

// parseDuration reads a duration flag: a positive Go duration with a unit.
// Absent, it is 0: no limit.
// durationDigits is a duration's form: numbers, each with its unit.
var durationDigits = regexp.MustCompile(`^(\d+(\.\d*)?(ns|us|µs|ms|s|m|h))+$`)

func parseDuration(c *cli.Context, name string) (time.Duration, error) {
	s := c.String(name)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil && strings.Contains(err.Error(), "invalid duration") && durationDigits.MatchString(s):
		// Well formed, but past time.Duration's 292 years.
		return 0, usagef("--%s %q: too long (at most 2562047h); leave it out to run until stopped", name, s)
	case err != nil || d <= 0:
		return 0, usagef("--%s %q: want a positive duration with a unit, e.g. 500ms, 30s, 5m or 1h30m", name, s)
	}
	return d, nil
}

// parseCount reads --count: a positive decimal number. Absent, it is 0:
// no limit.
func parseCount(c *cli.Context) (int, error) {
	s := c.String("count")
	if s == "" {
		return 0, nil
	}
	n, ok := parseDecimal(s, 1, 1<<31-1)
	if !ok {
		return 0, usagef("--count %q: want a positive number of events, in decimal (leave it out for no limit)", s)
	}
	return int(n), nil
}

func parseOutput(c *cli.Context) (output.Format, error) {
	f, err := output.ParseFormat(c.String("output"))
	if err != nil {
		return 0, usagef("-o: %v", err)
	}
	return f, nil
}

// noArgs rejects positional arguments; hint says what to use instead.
func noArgs(c *cli.Context, hint string) error {
	if c.NArg() > 0 {
		return usagef("%s takes no arguments, got %q%s", c.Command.Name, c.Args().First(), hint)
	}
	return nil
}

// runContext is a run's lifetime: until SIGINT, SIGTERM or SIGHUP, or
// duration when it is not 0. A closed stdout pipe (| head) must end the
// run quietly (the writers see EPIPE), not kill it.
func runContext(c *cli.Context, duration time.Duration) (context.Context, context.CancelFunc) {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	if duration == 0 {
		return ctx, stop
	}
	ctx, cancel := context.WithTimeout(ctx, duration)
	return ctx, func() { cancel(); stop() }
}

// usageMessage turns urfave/cli's own parse errors into the flag's terms.
func usageMessage(err error) error {
	msg := err.Error()
	if names, ok := strings.CutPrefix(msg, "Cannot use two forms of the same flag: "); ok {
		f := strings.Fields(names)
		for i := range f {
			f[i] = dashes(f[i])
		}
		return fmt.Errorf("%s are one flag: use one of the forms (a list repeats one: -P 80 -P 443, or -P 80,443)", strings.Join(f, " and "))
	}
	return err
}

func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}
