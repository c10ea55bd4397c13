// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/conntrace/conntrace/tracer/doctor"
	"github.com/conntrace/conntrace/tracer/output"
)

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check what watch needs from this machine, try every hook for real, and say which mode auto picks",
		Description: `Exit status 0 when conntrace watch can run here, 1 when it cannot.
Run it as root: trying the hooks needs the same privileges as watch.`,
		Flags: []cli.Flag{
			outputFlag(),
			btfFlag(),
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
