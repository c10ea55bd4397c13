// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/audit"
	"github.com/conntrace/conntrace/tracer/output"
)

// snapshotEvery is how often audit counts the ports each destination holds.
const snapshotEvery = 250 * time.Millisecond

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "audit outbound connections and ephemeral-port use per destination, before exhaustion bites",
		Description: `Follows connects, closes and failures live and counts the local ports each
destination (source address, destination address and port) holds, TIME_WAIT
included, against the usable ephemeral range. Warns above 50% and 80% of the
range, on any EADDRNOTAVAIL, and on churn that suggests missing connection
reuse. The summary prints on Ctrl-C or after --duration.`,
		Flags: []cli.Flag{
			durationFlag("stop after `DURATION` and print the summary"),
			&cli.StringFlag{Name: "interval", Aliases: []string{"i"}, Usage: "refresh a live table every `INTERVAL`, 100ms or more (JSON: one document per interval)", DefaultText: "off"},
			portFlag("only destinations on `PORT` (repeatable, or comma-separated)"),
			pidFlag("only process `PID` and the destinations it connects to (repeatable, or comma-separated)"),
			outputFlag(),
			readyFileFlag("create `PATH` once the audit has started"),
			hooksFlag(),
			btfFlag(),
		},
		Action:       runAudit,
		OnUsageError: onUsageError,
	}
}

func runAudit(c *cli.Context) error {
	if err := noArgs(c, ""); err != nil {
		return err
	}
	ports, pids, err := parsePortsPIDs(c)
	if err != nil {
		return err
	}
	format, err := parseOutput(c)
	if err != nil {
		return err
	}
	duration, err := parseDuration(c, "duration")
	if err != nil {
		return err
	}
	interval, err := parseDuration(c, "interval")
	if err != nil {
		return err
	}
	if interval > 0 && interval < 100*time.Millisecond {
		return usagef("--interval %v: give 100ms or more", interval)
	}
	ready, err := newReadyFile(c.String("ready-file"))
	if err != nil {
		return err
	}
	hooks, err := parseHooks(c)
	if err != nil {
		return err
	}
	stdout, stderr := c.App.Writer, c.App.ErrWriter
	ctx, stop := runContext(c, duration)
	defer stop()

	t, err := openTracer(tracer.Config{Ports: ports, PIDs: pids, Hooks: hooks, BTFPath: c.String("btf"),
		Events: 1<<tracer.EventConnect | 1<<tracer.EventClose | 1<<tracer.EventConnectFail})
	if err != nil {
		return err
	}
	defer t.Close()
	// Snapshots look into every network namespace.
	dropCapabilities(stderr, append([]tracer.Capability{tracer.CapBPF}, tracer.LookupCapabilities...))
	a := audit.New(audit.Config{Ports: ports, PIDs: pids})
	// The first snapshot names the processes behind connections that
	// predate the audit.
	a.Snapshot(true)
	defer ready.remove()
	if err := ready.create(); err != nil {
		return err
	}
	sayAttached(stderr, t, "auditing (the summary comes at the end)")

	p := &reportPrinter{w: stdout, format: format, terminal: isTerminal(stdout)}
	done := make(chan struct{})
	printErr := make(chan error, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	goSafely(printErr, cancel, func() error { return snapshots(ctx, done, a, interval, p) })
	err = t.Run(ctx, a)
	close(done)
	if perr := <-printErr; err == nil {
		err = perr
	}
	if err != nil {
		if errors.Is(err, output.ErrClosedPipe) {
			return nil
		}
		return err
	}
	a.Snapshot(true)
	p.final = true
	if err := p.print(a.Report(true)); err != nil && !errors.Is(err, output.ErrClosedPipe) {
		return err
	}
	return nil
}

// snapshots counts ports every snapshotEvery and prints a report every
// interval, until done.
func snapshots(ctx context.Context, done <-chan struct{}, a *audit.Auditor, interval time.Duration, p *reportPrinter) error {
	tick := time.NewTicker(snapshotEvery)
	defer tick.Stop()
	var report <-chan time.Time
	if interval > 0 {
		rt := time.NewTicker(interval)
		defer rt.Stop()
		report = rt.C
	}
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
			a.Snapshot(false)
		case <-report:
			if err := p.print(a.Report(false)); err != nil {
				return err
			}
		}
	}
}

// reportPrinter prints reports: JSON one per line; text as blocks,
// redrawn in place on a terminal.
type reportPrinter struct {
	w        io.Writer
	format   output.Format
	terminal bool
	final    bool
}

func (p *reportPrinter) print(r *audit.Report) error {
	var err error
	if p.format == output.JSON {
		err = writeJSON(p.w, r)
	} else {
		if p.terminal && !p.final {
			fmt.Fprint(p.w, "\x1b[H\x1b[2J") // home, clear: a live table
		}
		err = r.WriteText(p.w)
		if err == nil && !p.terminal {
			_, err = fmt.Fprintln(p.w)
		}
	}
	if errors.Is(err, syscall.EPIPE) {
		return output.ErrClosedPipe
	}
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// writeJSON writes v as one line of JSON, "->" as it is, not "-\u003e".
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
