// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/conntrace/conntrace/tracer"
)

// The flags that choose how conntrace hooks the kernel (watch, doctor).

func hooksFlag() cli.Flag {
	return &cli.StringFlag{Name: "hooks", Value: "auto",
		Usage: "`MODE` of attributing connections: auto (the best that works), fentry, kprobe or tracepoint"}
}

func btfFlag() cli.Flag {
	return &cli.StringFlag{Name: "btf", Usage: "kernel BTF file at `PATH`, for a kernel without " + tracer.KernelBTF}
}

func parseHooks(c *cli.Context) (tracer.Hooks, error) {
	h, err := tracer.ParseHooks(c.String("hooks"))
	if err != nil {
		return 0, usagef("--hooks: %v", err)
	}
	return h, nil
}

// openTracer mounts tracefs where it is missing (the tracepoints attach
// through it), then loads and attaches.
func openTracer(cfg tracer.Config) (*tracer.Tracer, error) {
	_, mountErr := tracer.MountTracefs()
	t, err := tracer.Open(cfg)
	if errors.Is(err, tracer.ErrNoTracefs) && mountErr != nil {
		return nil, mountErr
	}
	return t, err
}

// sayAttached tells on stderr, in one line, which hook mode is in use,
// which better ones auto passed over (doctor says why), and what is going
// on ("watching", "auditing").
func sayAttached(w io.Writer, t *tracer.Tracer, doing string) {
	var passed []string
	for _, e := range t.Unusable() {
		passed = append(passed, e.Mode.String())
	}
	if len(passed) == 0 {
		fmt.Fprintf(w, "conntrace: attached (%s hooks), %s; Ctrl-C to stop\n", t.Mode(), doing)
		return
	}
	fmt.Fprintf(w, "conntrace: attached (%s hooks; %s unavailable here: conntrace doctor says why), %s; Ctrl-C to stop\n",
		t.Mode(), strings.Join(passed, " and "), doing)
}

// dropCapabilities gives up, once attached, every capability the run no
// longer uses (README: Security). Failing to is worth a warning, not an
// exit: the tracer works either way.
func dropCapabilities(w io.Writer, keep []tracer.Capability) {
	if _, err := tracer.DropCapabilities(keep); err != nil {
		fmt.Fprintf(w, "conntrace: warning: %v\n", err)
	}
}

// sayWarnings prints the tracer's warnings not in seen, and returns all
// it has printed.
func sayWarnings(w io.Writer, t *tracer.Tracer, seen []string) []string {
	for _, s := range t.Warnings() {
		if !slices.Contains(seen, s) {
			fmt.Fprintf(w, "conntrace: warning: %s\n", s)
			seen = append(seen, s)
		}
	}
	return seen
}
