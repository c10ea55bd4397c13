// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/metrics"
	"github.com/conntrace/conntrace/tracer/sockets"
)

// defaultListen: 10843 is past the Prometheus project's list of default
// port allocations (9100-9999 are all taken; later exporters were given
// 10000 and up, in order), so no registered exporter uses it.
const defaultListen = ":10843"

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve Prometheus metrics of every connection, failure and lost event, until stopped",
		Description: `GET /metrics: the Prometheus text format (tracer/metrics/README.md lists
the names and labels). GET /healthz: 200 once attached, 503 before and
while stopping. The filters run in the kernel, as in watch. SIGTERM,
SIGINT or SIGHUP stops cleanly.`,
		Flags: append(filterFlags(),
			&cli.StringFlag{Name: "listen", Aliases: []string{"l"}, Value: defaultListen, Usage: "serve HTTP on `ADDR` (host:port; \":PORT\" for every address)"},
			&cli.StringFlag{Name: "max-series", Value: "2000", Usage: "at most `N` label sets per metric, overflow included; past four fifths of them new ones are counted under comm=\"other\", then \"other\" labels"},
			&cli.StringFlag{Name: "labels", Value: "comm,container,port", Usage: "the optional `LABELS` to use, comma-separated: comm, container, port (\"none\": none of them)"},
			durationFlag("stop after `DURATION`, e.g. 1h"),
			readyFileFlag("create `PATH` once attached and serving"),
			hooksFlag(),
			btfFlag(),
		),
		Action:       serve,
		OnUsageError: onUsageError,
	}
}

type serveOptions struct {
	cfg       tracer.Config
	listen    string
	maxSeries int
	labels    metrics.Labels
	duration  time.Duration
	ready     *readyFile
}

func parseServe(c *cli.Context) (serveOptions, error) {
	var o serveOptions
	if err := noArgs(c, " (filters are flags: --port, --pid, --comm)"); err != nil {
		return o, err
	}
	var err error
	if o.cfg, err = parseFilters(c); err != nil {
		return o, err
	}
	o.listen = c.String("listen")
	if err := checkListen(o.listen); err != nil {
		return o, err
	}
	n, ok := parseDecimal(c.String("max-series"), 1, 1<<20)
	if !ok {
		return o, usagef("--max-series %q: want a number from 1 to %d", c.String("max-series"), 1<<20)
	}
	o.maxSeries = int(n)
	if o.labels, err = parseLabels(c.String("labels")); err != nil {
		return o, err
	}
	if o.duration, err = parseDuration(c, "duration"); err != nil {
		return o, err
	}
	if o.ready, err = newReadyFile(c.String("ready-file")); err != nil {
		return o, err
	}
	return o, nil
}

func parseLabels(s string) (metrics.Labels, error) {
	var l metrics.Labels
	if s == "none" {
		return l, nil
	}
	for _, name := range strings.Split(s, ",") {
		switch strings.TrimSpace(name) {
		case "none":
			return l, usagef("--labels %q: none stands alone (--labels none); otherwise list any of comm, container, port", s)
		case "comm":
			l.Comm = true
		case "container":
			l.Container = true
		case "port":
			l.Port = true
		default:
			return l, usagef("--labels: unknown label %q (want comm, container, port, or none)", name)
		}
	}
	return l, nil
}

// checkListen checks serve's --listen, for serve and for the systemd unit
// that runs it.
func checkListen(addr string) error {
	if _, port, err := net.SplitHostPort(addr); err != nil {
		return usagef("--listen %q: want host:port or :port", addr)
	} else if _, ok := parseDecimal(port, 0, 65535); !ok {
		return usagef("--listen %q: want a port number from 0 (any free one) to 65535, in decimal", addr)
	}
	return nil
}

func serve(c *cli.Context) error {
	o, err := parseServe(c)
	if err != nil {
		return err
	}
	defer o.ready.remove()
	stderr := c.App.ErrWriter
	// The address first: a port in use is said before anything loads.
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("--listen %s: address already in use (see: conntrace who %s)", o.listen, portOf(o.listen))
		}
		if u := errors.Unwrap(err); u != nil {
			err = u // "bind: permission denied", without Go's "listen tcp" prefix
		}
		return fmt.Errorf("--listen %s: %v", o.listen, err)
	}
	defer ln.Close()

	var healthy atomic.Bool
	reg := prometheus.NewRegistry()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /healthz", healthz(&healthy))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errs := make(chan error, 2)
	ctx, cancel := runContext(c, o.duration)
	defer cancel()
	// Stopping starts at the signal (or --duration): /healthz says 503
	// from then on, and the server answers until the tracer is gone.
	defer context.AfterFunc(ctx, func() { healthy.Store(false) })()
	goSafely(errs, cancel, func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving HTTP: %w", err)
		}
		return nil
	})
	defer func() {
		healthy.Store(false)
		shut, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		srv.Shutdown(shut)
	}()

	t, err := openTracer(o.cfg)
	if err != nil {
		return err
	}
	defer t.Close()
	// Ephemeral-port snapshots look into every network namespace, as
	// audit does.
	dropCapabilities(stderr, append(append([]tracer.Capability{tracer.CapBPF}, tracer.LookupCapabilities...), o.ready.capabilities()...))
	m := metrics.New(metrics.Config{
		MaxSeries: o.maxSeries,
		Labels:    o.labels,
		Ephemeral: ephemeralRange(),
		Build:     versionInfo().labels(),
		Hooks:     t.Mode().String(),
	})
	reg.MustRegister(m, &metrics.Ephemeral{MaxSeries: o.maxSeries, MinInterval: 5 * time.Second, Ports: o.cfg.Ports})
	if ctx.Err() == nil { // not stopping already
		healthy.Store(true)
	}
	// The address before the ready file: with --listen :0 a script reads
	// it once the file is there.
	sayAttached(stderr, t, "serving http://"+ln.Addr().String()+"/metrics")
	warned := sayWarnings(stderr, t, nil)
	if err := o.ready.create(); err != nil {
		return err
	}

	goSafely(errs, cancel, func() error { return t.Run(ctx, m) })
	err = <-errs
	cancel()
	healthy.Store(false)
	sayWarnings(stderr, t, warned)
	st := t.Stats()
	fmt.Fprintf(stderr, "conntrace: %d events, %d lost\n", st.Events, st.Lost)
	sayDNSStats(stderr, st)
	return err
}

// healthz answers 200 "ok" while attached is true, 503 otherwise
// (loading, stopping).
func healthz(attached *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !attached.Load() {
			http.Error(w, "not attached", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}

// portOf is the port of a host:port.
func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// ephemeralRange is this network namespace's ephemeral port range (the
// kernel's default if it cannot be read).
func ephemeralRange() [2]uint16 {
	if lo, hi, err := sockets.EphemeralRange(sockets.NS{}); err == nil && lo <= hi {
		return [2]uint16{lo, hi}
	}
	return [2]uint16{32768, 60999}
}
