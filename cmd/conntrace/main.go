// SPDX-License-Identifier: Apache-2.0

// Command conntrace traces TCP connections live, with the process behind
// every event.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the run failed
	exitUsage = 2 // bad flags or arguments
)

// usageError marks an error in what the user typed.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:            "conntrace",
		Usage:           "trace TCP connections and UDP flows live, with the process behind every event",
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		Version:         versionInfo().Version,
		Commands:        []*cli.Command{watchCommand(), topCommand(), serveCommand(), auditCommand(), portsCommand(), whoCommand(), doctorCommand(), deployCommand(), versionCommand(), completionCommand(), manCommand()},
		OnUsageError:    onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown command %q (try 'conntrace --help')", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
}

func onUsageError(_ *cli.Context, err error, _ bool) error { return usageError{usageMessage(err)} }

// flagsFirst moves a command's flags ahead of its positional arguments
// ("who 8080 -o json" -> "who -o json 8080"): urfave/cli stops reading
// flags at the first positional one, and users write either order.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 3 {
		return args
	}
	cmd := app.Command(args[1])
	if cmd == nil || len(cmd.Subcommands) > 0 {
		return args // deploy's subcommands take no positional arguments
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	flags, positional := []string{}, []string{}
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			positional = append(positional, rest[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if takesValue[name] && !strings.Contains(name, "=") && i+1 < len(rest) {
			i++
			flags = append(flags, rest[i])
		}
	}
	out := append([]string{args[0], args[1]}, flags...)
	if len(positional) > 0 {
		out = append(append(out, "--"), positional...)
	}
	return out
}

// run is main without os.Exit, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	return runApp(newApp(stdout, stderr), args, stderr)
}

// debugEnv, when set, lets a panic through with its stack trace.
const debugEnv = "CONNTRACE_DEBUG"

// runApp runs app; a panic becomes one line and exit status 1.
func runApp(app *cli.App, args []string, stderr io.Writer) (code int) {
	defer func() {
		if os.Getenv(debugEnv) != "" {
			return
		}
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "conntrace: %v\n", internalError(r))
			code = exitError
		}
	}()
	err := app.Run(flagsFirst(app, args))
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "conntrace: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitError
}

// internalError is what a panic becomes: one line, not a stack trace.
func internalError(r any) error {
	return fmt.Errorf("internal error: %v (please report it; %s=1 shows where)", r, debugEnv)
}

// goSafely runs fn on a goroutine of its own and sends its error to errs.
// runApp recovers panics on its own goroutine only: a panic here becomes
// an internal error too, and cancel ends the run.
func goSafely(errs chan<- error, cancel context.CancelFunc, fn func() error) {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				if os.Getenv(debugEnv) != "" {
					panic(r)
				}
				errs <- internalError(r)
				cancel()
			}
		}()
		errs <- fn()
	}()
}

func main() {
	stop, err := startProfile(os.Getenv(profileEnv))
	if err != nil {
		fmt.Fprintf(os.Stderr, "conntrace: %v\n", err)
		os.Exit(exitError)
	}
	code := run(os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
