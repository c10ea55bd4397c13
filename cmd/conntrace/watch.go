package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/output"
)

func watchCommand() *cli.Command {
	return &cli.Command{
		Name:  "watch",
		Usage: "print the TCP lifecycle live: listen, connect, accept, close, and every failed connect or bind",
		Description: `Every filter runs in the kernel. A connection that matched when it opened
also reports its close. Ctrl-C (SIGINT), SIGTERM or SIGHUP stops, flushes
and prints a summary on stderr.`,
		Flags: []cli.Flag{
			&cli.IntSliceFlag{Name: "port", Aliases: []string{"P"}, Usage: "only connections whose local or remote `PORT` is this (repeatable, or comma-separated)"},
			&cli.IntSliceFlag{Name: "pid", Aliases: []string{"p"}, Usage: "only connections of process `PID` (repeatable, or comma-separated)"},
			&cli.StringFlag{Name: "comm", Aliases: []string{"c"}, Usage: "only processes named `NAME` (exact, as in /proc/PID/comm)"},
			&cli.BoolFlag{Name: "ipv4", Aliases: []string{"4"}, Usage: "only IPv4 (IPv4-mapped IPv6 counts as IPv4)"},
			&cli.BoolFlag{Name: "ipv6", Aliases: []string{"6"}, Usage: "only IPv6"},
			&cli.StringFlag{Name: "events", Aliases: []string{"e"}, Usage: "`EVENTS` to show, comma-separated: listen, connect, accept, close, connect_fail, bind_fail", DefaultText: "all"},
			&cli.BoolFlag{Name: "failures", Aliases: []string{"f"}, Usage: "only failures: connect_fail and bind_fail (same as --events connect_fail,bind_fail)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "output `FORMAT`: text or json (one object per line)"},
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "stop after `DURATION`, e.g. 30s", DefaultText: "until Ctrl-C"},
			&cli.IntFlag{Name: "count", Aliases: []string{"n"}, Usage: "stop after `N` events", DefaultText: "no limit"},
			&cli.StringFlag{Name: "ready-file", Usage: "create `PATH` once the probes are attached (for scripts)"},
			hooksFlag(),
			btfFlag(),
		},
		Action:       watch,
		OnUsageError: onUsageError,
	}
}

type watchOptions struct {
	cfg       tracer.Config
	format    output.Format
	duration  time.Duration
	count     int
	readyFile string
}

// parseWatch turns flags into options; every error is a usage error.
func parseWatch(c *cli.Context) (watchOptions, error) {
	var o watchOptions
	if c.NArg() > 0 {
		return o, usagef("watch takes no arguments, got %q (filters are flags: --port, --pid, --comm)", c.Args().First())
	}
	var err error
	if o.cfg.Ports, o.cfg.PIDs, err = parsePortsPIDs(c); err != nil {
		return o, err
	}
	o.cfg.Comm = c.String("comm")
	if len(o.cfg.Comm) > 15 {
		return o, usagef("--comm %q is longer than 15 bytes, the kernel's limit for process names", o.cfg.Comm)
	}
	switch v4, v6 := c.Bool("ipv4"), c.Bool("ipv6"); {
	case v4 && v6:
		return o, usagef("-4 and -6 exclude each other (give neither for both)")
	case v4:
		o.cfg.Family = tracer.FamilyIPv4
	case v6:
		o.cfg.Family = tracer.FamilyIPv6
	}
	switch events := c.String("events"); {
	case c.Bool("failures") && events != "":
		return o, usagef("--failures and --events exclude each other")
	case c.Bool("failures"):
		o.cfg.Events = tracer.Failures
	case events != "":
		mask, err := tracer.ParseEvents(events)
		if err != nil {
			return o, usagef("--events: %v", err)
		}
		o.cfg.Events = mask
	}
	if o.format, err = output.ParseFormat(c.String("output")); err != nil {
		return o, usagef("-o: %v", err)
	}
	if o.duration = c.Duration("duration"); o.duration < 0 {
		return o, usagef("--duration %v is negative", o.duration)
	}
	if o.count = c.Int("count"); o.count < 0 {
		return o, usagef("--count %d is negative", o.count)
	}
	o.readyFile = c.String("ready-file")
	if o.cfg.Hooks, err = parseHooks(c); err != nil {
		return o, err
	}
	o.cfg.BTFPath = c.String("btf")
	return o, nil
}

func watch(c *cli.Context) error {
	o, err := parseWatch(c)
	if err != nil {
		return err
	}
	stderr := c.App.ErrWriter

	// A closed stdout pipe (| head) must end the run quietly, not kill it.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}

	warned := map[string]bool{}
	o.cfg.OnWarning = func(err error) {
		if msg := err.Error(); !warned[msg] {
			warned[msg] = true
			fmt.Fprintf(stderr, "conntrace: warning: %s\n", msg)
		}
	}
	t, err := tracer.Open(o.cfg)
	if err != nil {
		return err
	}
	defer t.Close()
	dropCapabilities(stderr, o.cfg.CapabilitiesAfterAttach())

	w := output.NewWriter(c.App.Writer, o.format, stderr)
	// The header at once: the user sees the run has started.
	if err = w.WriteHeader(); err == nil {
		err = w.Flush()
	}
	if errors.Is(err, output.ErrClosedPipe) {
		return nil
	} else if err != nil {
		return err
	}
	if o.readyFile != "" {
		if err := os.WriteFile(o.readyFile, []byte("ready\n"), 0o644); err != nil {
			return fmt.Errorf("--ready-file: %w", err)
		}
	}
	sayAttached(stderr, t, "watching")

	err = t.Run(ctx, &limitSink{Writer: w, left: o.count})
	st := t.Stats()
	if errors.Is(err, output.ErrClosedPipe) {
		return nil
	}
	fmt.Fprintf(stderr, "conntrace: %d events, %d lost\n", st.Events, st.Lost)
	return err
}

// parsePortsPIDs reads --port and --pid.
func parsePortsPIDs(c *cli.Context) (ports []uint16, pids []uint32, err error) {
	for _, p := range c.IntSlice("port") {
		if p < 1 || p > 65535 {
			return nil, nil, usagef("--port %d is out of range (1-65535)", p)
		}
		ports = append(ports, uint16(p))
	}
	for _, p := range c.IntSlice("pid") {
		if p < 1 || p > 1<<22 {
			return nil, nil, usagef("--pid %d is not a valid process id", p)
		}
		pids = append(pids, uint32(p))
	}
	return ports, pids, nil
}

// limitSink stops the run after --count events (lost reports do not count).
type limitSink struct {
	*output.Writer
	left int // 0: no limit
}

func (s *limitSink) Write(ev *tracer.Event) error {
	if err := s.Writer.Write(ev); err != nil {
		return err
	}
	if s.left > 0 && ev.Type != tracer.EventLost {
		if s.left--; s.left == 0 {
			return tracer.ErrStop
		}
	}
	return nil
}
