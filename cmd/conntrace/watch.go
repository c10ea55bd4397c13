// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/output"
)

func watchCommand() *cli.Command {
	return &cli.Command{
		Name:  "watch",
		Usage: "print the TCP and UDP lifecycle live: listen, connect, accept, close, and every failed connect or bind",
		Description: `Every filter runs in the kernel. A connection that matched when it opened
also reports its close. Ctrl-C (SIGINT), SIGTERM or SIGHUP stops: nothing
new is reported, the connections waiting in accept queues get up to 1s to be
accepted (those left are counted as lost), then a summary goes to stderr.`,
		Flags: append(filterFlags(),
			outputFlag(),
			durationFlag("stop after `DURATION`, e.g. 30s or 5m"),
			&cli.StringFlag{Name: "count", Aliases: []string{"n"}, Usage: "stop after `N` events", DefaultText: "no limit"},
			lookupWaitFlag(),
			readyFileFlag("create `PATH` once the probes are attached"),
			hooksFlag(),
			btfFlag(),
		),
		Action:       watch,
		OnUsageError: onUsageError,
	}
}

// runOptions are what watch and top share: the filters, the output
// format, how long to run and the ready file.
type runOptions struct {
	cfg      tracer.Config
	format   output.Format
	duration time.Duration
	ready    *readyFile
}

// parseRun reads filterFlags, -o, --duration and --lookup-wait; every
// error is a usage error. The caller makes the ready file last
// (readyLast): it is created at once.
func parseRun(c *cli.Context) (runOptions, error) {
	var o runOptions
	if err := noArgs(c, " (filters are flags: --port, --pid, --comm)"); err != nil {
		return o, err
	}
	var err error
	if o.cfg, err = parseFilters(c); err != nil {
		return o, err
	}
	if o.format, err = parseOutput(c); err != nil {
		return o, err
	}
	if o.duration, err = parseDuration(c, "duration"); err != nil {
		return o, err
	}
	o.cfg.LookupWait, err = parseDuration(c, "lookup-wait")
	return o, err
}

// readyLast makes the ready file once every other flag is read.
func (o *runOptions) readyLast(c *cli.Context) (err error) {
	o.ready, err = newReadyFile(c.String("ready-file"))
	return err
}

type watchOptions struct {
	runOptions
	count int
}

// parseWatch turns flags into options; every error is a usage error.
func parseWatch(c *cli.Context) (watchOptions, error) {
	var o watchOptions
	var err error
	if o.runOptions, err = parseRun(c); err != nil {
		return o, err
	}
	if o.count, err = parseCount(c); err != nil {
		return o, err
	}
	return o, o.readyLast(c)
}

// lookupWaitFlag: how long an event may wait for its lookups.
func lookupWaitFlag() cli.Flag {
	return &cli.StringFlag{Name: "lookup-wait", Usage: "let an event wait at most `DURATION` for who holds a port or listens (then it says it is unknown), and the events behind it as long", DefaultText: "500ms"}
}

// maxConnections bounds --max-connections: the socket table takes about
// 150 bytes of kernel memory per entry it holds (2.5 GB at this size).
const maxConnections = 1 << 24

// filterFlags are the in-kernel filters watch, top and serve share.
func filterFlags() []cli.Flag {
	return []cli.Flag{
		portFlag("only connections whose local or remote `PORT` is this (repeatable, or comma-separated)"),
		pidFlag("only connections of process `PID` (repeatable, or comma-separated)"),
		&cli.StringSliceFlag{Name: "comm", Aliases: []string{"c"}, Usage: "only processes named `NAME`, exactly, as in /proc/PID/comm (repeatable, or comma-separated)"},
		containerFlag(),
		cgroupFlag(),
		&cli.BoolFlag{Name: "ipv4", Aliases: []string{"4"}, Usage: "only IPv4 (IPv4-mapped IPv6 counts as IPv4)"},
		&cli.BoolFlag{Name: "ipv6", Aliases: []string{"6"}, Usage: "only IPv6"},
		&cli.BoolFlag{Name: "tcp", Aliases: []string{"t"}, Usage: "only TCP (with --udp: both, as with neither)"},
		&cli.BoolFlag{Name: "udp", Aliases: []string{"u"}, Usage: "only UDP: its flows and bind failures (with --tcp: both, as with neither)"},
		&cli.StringFlag{Name: "udp-idle", Usage: "end a UDP flow after `DURATION` without a datagram either way, at least 1s", DefaultText: "30s, or 120s once both sides sent"},
		&cli.StringSliceFlag{Name: "name", Usage: "only DNS lookups of `NAME`, and connections to an address resolved from it: a name, or *.DOMAIN for every name below it (repeatable, or comma-separated)"},
		&cli.StringFlag{Name: "dns-timeout", Usage: "report a DNS query with no answer after `DURATION` as a timeout (resolv.conf's default), 100ms to 1m", DefaultText: "5s"},
		&cli.StringFlag{Name: "events", Aliases: []string{"e"}, Usage: "`EVENTS` to trace, comma-separated: listen, connect, accept, close, connect_fail, bind_fail, drop, dns", DefaultText: "all"},
		&cli.BoolFlag{Name: "failures", Aliases: []string{"f"}, Usage: "only failures: connect_fail and bind_fail (same as --events connect_fail,bind_fail)"},
		&cli.StringFlag{Name: "max-connections", Usage: "follow at most `N` TCP connection ends open at once, 16 to 16777216 (a connection between two processes here has two); past it, their events are counted as lost", DefaultText: "1048576"},
	}
}

// parseFilters reads filterFlags, hooksFlag and btfFlag into a tracer
// configuration; every error is a usage error.
func parseFilters(c *cli.Context) (tracer.Config, error) {
	var cfg tracer.Config
	var err error
	if cfg.Ports, cfg.PIDs, err = parsePortsPIDs(c); err != nil {
		return cfg, err
	}
	if cfg.Comms, err = parseComms(c); err != nil {
		return cfg, err
	}
	if cfg.Containers, cfg.Cgroups, err = parseContainers(c); err != nil {
		return cfg, err
	}
	switch v4, v6 := c.Bool("ipv4"), c.Bool("ipv6"); {
	case v4 && v6:
		return cfg, usagef("-4 and -6 exclude each other (give neither for both)")
	case v4:
		cfg.Family = tracer.FamilyIPv4
	case v6:
		cfg.Family = tracer.FamilyIPv6
	}
	switch tcp, udp := c.Bool("tcp"), c.Bool("udp"); {
	case tcp && !udp:
		cfg.Proto = tracer.ProtoTCP
	case udp && !tcp:
		cfg.Proto = tracer.ProtoUDP
	}
	if cfg.UDPIdle, err = parseDuration(c, "udp-idle"); err != nil {
		return cfg, err
	}
	if cfg.UDPIdle > 0 && cfg.UDPIdle < time.Second {
		return cfg, usagef("--udp-idle %s: want at least 1s", c.String("udp-idle"))
	}
	if cfg.Names, err = parseNames(c); err != nil {
		return cfg, err
	}
	if cfg.DNSTimeout, err = parseDuration(c, "dns-timeout"); err != nil {
		return cfg, err
	}
	if cfg.DNSTimeout != 0 && (cfg.DNSTimeout < 100*time.Millisecond || cfg.DNSTimeout > time.Minute) {
		return cfg, usagef("--dns-timeout %s: want 100ms to 1m", c.String("dns-timeout"))
	}
	switch events := c.String("events"); {
	case c.Bool("failures") && events != "":
		return cfg, usagef("--failures and --events exclude each other")
	case c.Bool("failures"):
		cfg.Events = tracer.Failures
	case events != "":
		mask, err := tracer.ParseEvents(events)
		if err != nil {
			return cfg, usagef("--events: %v", err)
		}
		cfg.Events = mask
	}
	if s := c.String("max-connections"); s != "" {
		n, ok := parseDecimal(s, 16, maxConnections)
		if !ok {
			return cfg, usagef("--max-connections %q: want 16 to %d connection ends, in decimal", s, maxConnections)
		}
		cfg.SocketTableSize = uint32(n)
	}
	if cfg.Hooks, err = parseHooks(c); err != nil {
		return cfg, err
	}
	cfg.BTFPath = c.String("btf")
	return cfg, nil
}

func watch(c *cli.Context) error {
	o, err := parseWatch(c)
	if err != nil {
		return err
	}
	defer o.ready.remove()
	stderr := c.App.ErrWriter
	ctx, cancel := runContext(c, o.duration)
	defer cancel()

	t, err := openTracer(o.cfg)
	if err != nil {
		return err
	}
	defer t.Close()
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
	dropCapabilities(stderr, append(o.cfg.CapabilitiesAfterAttach(), o.ready.capabilities()...))
	if err := o.ready.create(); err != nil {
		return err
	}
	sayAttached(stderr, t, "watching")
	warned := sayWarnings(stderr, t, nil)

	err = t.Run(ctx, &limitSink{Writer: w, left: o.count})
	st := t.Stats()
	if errors.Is(err, output.ErrClosedPipe) {
		return nil
	}
	sayWarnings(stderr, t, warned)
	fmt.Fprintf(stderr, "conntrace: %d events, %d lost\n", st.Events, st.Lost)
	sayDNSStats(stderr, st)
	return err
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

// sayDNSStats says what of DNS was not made into lookups, if anything.
func sayDNSStats(stderr io.Writer, st tracer.Stats) {
	if st.DNSMalformed > 0 {
		fmt.Fprintf(stderr, "conntrace: %d DNS messages with no readable question (not counted as lookups)\n", st.DNSMalformed)
	}
	if st.DNSUnfollowed > 0 {
		fmt.Fprintf(stderr, "conntrace: %d DNS queries not followed (65536 in flight): their answers have no latency, their timeouts are not reported\n", st.DNSUnfollowed)
	}
	if st.DNSStreamSkipped > 0 {
		fmt.Fprintf(stderr, "conntrace: %d segments of DNS over TCP not read: where their messages began was not seen\n", st.DNSStreamSkipped)
	}
}
