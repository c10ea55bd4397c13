// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/urfave/cli/v2"

	"github.com/conntrace/conntrace/cmd/conntrace/topview"
	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/audit"
	"github.com/conntrace/conntrace/tracer/event"
	"github.com/conntrace/conntrace/tracer/output"
	"github.com/conntrace/conntrace/tracer/top"
)

func topCommand() *cli.Command {
	return &cli.Command{
		Name:  "top",
		Usage: "a live, sorted picture of the host's connections: processes, peers, failures and ports",
		Description: `Refreshes every --interval from the same in-kernel events and filters as
watch. Views (keys 1-4 or tab): processes (c: containers), peers, failures
grouped by process, peer and cause with their explanation, and ports
(listeners, ephemeral ports per destination). Arrows pick the sort column
and the row, enter shows the row's recent events, / filters, p pauses,
q quits. Without a terminal, or with --batch, it prints the tables as
text every interval, like top -b; -o json prints one object per interval.`,
		Flags: append(filterFlags(),
			outputFlag(),
			&cli.StringFlag{Name: "interval", Aliases: []string{"i"}, Usage: "refresh every `INTERVAL`, 100ms to 1h", DefaultText: "1s"},
			&cli.BoolFlag{Name: "batch", Aliases: []string{"b"}, Usage: "print the tables as text every interval, not a full-screen view (as without a terminal)"},
			&cli.StringFlag{Name: "iterations", Aliases: []string{"n"}, Usage: "stop after `N` intervals", DefaultText: "no limit"},
			&cli.StringFlag{Name: "rows", Usage: "print at most `N` rows of each table (--batch and -o json)", DefaultText: "all"},
			durationFlag("stop after `DURATION`, e.g. 30s or 5m"),
			lookupWaitFlag(),
			readyFileFlag("create `PATH` once the probes are attached"),
			hooksFlag(),
			btfFlag(),
		),
		Action:       runTop,
		OnUsageError: onUsageError,
	}
}

type topOptions struct {
	runOptions
	interval   time.Duration
	batch      bool
	iterations int
	rows       int
}

func parseTop(c *cli.Context) (topOptions, error) {
	var o topOptions
	var err error
	if o.runOptions, err = parseRun(c); err != nil {
		return o, err
	}
	if o.interval, err = parseDuration(c, "interval"); err != nil {
		return o, err
	}
	switch {
	case o.interval == 0:
		o.interval = time.Second
	case o.interval < 100*time.Millisecond || o.interval > time.Hour:
		return o, usagef("--interval %s: want 100ms to 1h", c.String("interval"))
	}
	for _, f := range []struct {
		name string
		to   *int
		what string
	}{{"iterations", &o.iterations, "intervals"}, {"rows", &o.rows, "rows"}} {
		if s := c.String(f.name); s != "" {
			n, ok := parseDecimal(s, 1, 1<<31-1)
			if !ok {
				return o, usagef("--%s %q: want a positive number of %s, in decimal", f.name, s, f.what)
			}
			*f.to = int(n)
		}
	}
	o.batch = c.Bool("batch")
	return o, o.readyLast(c)
}

// fanout gives every event to each sink.
type fanout []event.Sink

func (f fanout) Write(ev *event.Event) error {
	for _, s := range f {
		if err := s.Write(ev); err != nil {
			return err
		}
	}
	return nil
}

func (f fanout) Flush() error {
	for _, s := range f {
		if err := s.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func runTop(c *cli.Context) error {
	o, err := parseTop(c)
	if err != nil {
		return err
	}
	defer o.ready.remove()
	stdout, stderr := c.App.Writer, c.App.ErrWriter
	full := o.format == output.Text && !o.batch && isTerminal(stdout) && isTerminal(os.Stdin)
	ctx, stop := runContext(c, o.duration)
	defer stop()

	t, err := openTracer(o.cfg)
	if err != nil {
		return err
	}
	defer t.Close()
	// The ports view counts the ports each destination holds in every
	// network namespace, as audit does.
	dropCapabilities(stderr, append(append([]tracer.Capability{tracer.CapBPF}, tracer.LookupCapabilities...), o.ready.capabilities()...))
	agg := top.New(top.Config{History: max(int(time.Minute/o.interval), 1)})
	aud := audit.New(audit.Config{Ports: o.cfg.Ports, PIDs: o.cfg.PIDs})
	aud.Snapshot(true)
	report := func() *audit.Report {
		aud.Snapshot(false)
		return aud.Report(false)
	}
	if err := o.ready.create(); err != nil {
		return err
	}
	sayAttached(stderr, t, "top")
	warned := sayWarnings(stderr, t, nil)
	hooks := t.Mode().String()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	goSafely(runErr, cancel, func() error { return t.Run(ctx, fanout{agg, aud}) })
	// The views see the run's end on stopped; its error is runErr's.
	stopped := make(chan struct{})
	var rerr error
	go func() { rerr = <-runErr; close(stopped) }()

	if full {
		err = runFullScreen(ctx, stdout, agg, report, hooks, o, stopped)
	} else {
		err = runBatch(ctx, stdout, agg, report, hooks, o, stopped)
	}
	cancel()
	<-stopped
	if err == nil {
		err = rerr
	}
	if errors.Is(err, output.ErrClosedPipe) || errors.Is(err, syscall.EPIPE) {
		return nil
	}
	sayWarnings(stderr, t, warned)
	st := t.Stats()
	fmt.Fprintf(stderr, "conntrace: %d events, %d lost\n", st.Events, st.Lost)
	return err
}

// runBatch prints each interval until the run ends, then the interval it
// ended in (after the tracer's last event: every event is in one).
func runBatch(ctx context.Context, w io.Writer, agg *top.Aggregator, report func() *audit.Report, hooks string, o topOptions, stopped <-chan struct{}) error {
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	b := &topview.Batch{W: w, Hooks: hooks, Rows: o.rows}
	print := func(now time.Time) error {
		s, r := agg.Tick(now), report()
		if o.format == output.JSON {
			return topview.WriteJSON(w, s, r, hooks, o.rows)
		}
		return b.Write(s, r)
	}
	for n := 0; o.iterations == 0 || n < o.iterations; n++ {
		select {
		case <-ctx.Done():
			<-stopped
			return print(time.Now())
		case <-stopped:
			return print(time.Now())
		case now := <-tick.C:
			if err := print(now); err != nil {
				return err
			}
		}
	}
	return nil
}

// runFullScreen runs the full-screen view until q, the end of the run,
// or --iterations.
func runFullScreen(ctx context.Context, w io.Writer, agg *top.Aggregator, report func() *audit.Report, hooks string, o topOptions, stopped <-chan struct{}) error {
	m := topview.NewModel(agg, report, hooks, o.interval, o.iterations)
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx), tea.WithOutput(w), tea.WithoutSignalHandler())
	go func() {
		<-stopped
		p.Send(topview.Stopped{})
	}()
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		err = nil // SIGTERM, SIGHUP or --duration: the terminal is restored
	}
	return err
}
