// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/doctor"
	"github.com/conntrace/conntrace/tracer/output"
)

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check what watch needs from this machine, try every hook for real, and say which mode auto picks",
		Description: `Exit status 0 when conntrace watch can run here, 1 when it cannot.
Run it as root: trying the hooks needs the same privileges as watch.

With --cost, it runs watch instead (every event, written nowhere) for a
while of this machine's own traffic, and says what that cost: each BPF
program's runs and time as the kernel counts them (bpf_stats, on for the
while), and the reader's CPU.`,
		Flags: []cli.Flag{
			outputFlag(),
			btfFlag(),
			&cli.StringFlag{Name: "cost", Usage: "measure what watch costs here over `DURATION` of this machine's traffic (1s to 10m; Ctrl-C ends it early)"},
		},
		Action:       runDoctor,
		OnUsageError: onUsageError,
	}
}

// errCannotWatch ends doctor with exit status 1; the report said why.
var errCannotWatch = errors.New("watch cannot run on this machine (see the advice above)")

func runDoctor(c *cli.Context) error {
	if err := noArgs(c, ""); err != nil {
		return err
	}
	format, err := parseOutput(c)
	if err != nil {
		return err
	}
	if c.IsSet("cost") {
		return runCost(c, format)
	}
	r := doctor.Run(c.String("btf"))
	if format == output.JSON {
		err = writeJSON(c.App.Writer, r)
	} else {
		err = r.WriteText(c.App.Writer)
	}
	if err != nil {
		return err
	}
	if !r.CanWatch {
		return errCannotWatch
	}
	return nil
}

// runCost is doctor --cost.
func runCost(c *cli.Context, format output.Format) error {
	d, err := parseDuration(c, "cost")
	if err != nil {
		return err
	}
	if d < time.Second || d > 10*time.Minute {
		return usagef("--cost %s: want 1s to 10m", c.String("cost"))
	}
	t, err := openTracer(tracer.Config{BTFPath: c.String("btf")})
	if err != nil {
		return err
	}
	defer t.Close()
	fmt.Fprintf(c.App.ErrWriter, "conntrace: attached (%s hooks), measuring for %s\n", t.Mode(), d)
	ctx, stop := runContext(c, d)
	defer stop()
	r, err := doctor.Cost(ctx, t)
	if err != nil {
		return err
	}
	if format == output.JSON {
		return writeJSON(c.App.Writer, r)
	}
	return r.WriteText(c.App.Writer)
}
