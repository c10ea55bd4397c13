// SPDX-License-Identifier: Apache-2.0

package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/conntrace/conntrace/tracer"
)

// The completion scripts and the man page are written from the CLI's own
// definitions (newApp), walked here, so they cannot disagree with --help.

// docCommand is one command of the tree: its words after "conntrace"
// (none for the top), what it says of itself, its flags and subcommands.
type docCommand struct {
	path               []string
	usage, description string
	args               string   // ArgsUsage: positional arguments
	argChoices         []string // their values, when a fixed few
	flags              []docFlag
	subs               []*docCommand
}

type docFlag struct {
	long    string   // without dashes
	aliases []string // short ones ("o") and others, without dashes
	// value is the placeholder of a flag that takes one (FORMAT, PORT);
	// "" for a switch.
	value, usage, def string
	choices           []string // the values it accepts, when a fixed few
	file              bool     // the value is a path
}

// flagChoices are the values of the flags that take one of a fixed few,
// by flag name (the same name means the same in every command).
func flagChoices(name string) []string {
	switch name {
	case "output":
		return []string{"text", "json"}
	case "events":
		var names []string
		for _, t := range tracer.AllEvents {
			names = append(names, t.String())
		}
		return names
	case "hooks":
		names := []string{tracer.HooksAuto.String()}
		for _, m := range tracer.HookModes {
			names = append(names, m.String())
		}
		return names
	case "labels":
		return []string{"comm", "container", "port", "none"}
	}
	return nil
}

// argChoices are the positional arguments of commands that take one of
// a fixed few, by command name.
var argChoices = map[string][]string{"completion": completionShells}

// fileFlags take a path.
var fileFlags = map[string]bool{"btf": true, "ready-file": true, "netns": true, "binary": true}

// cliTree walks app into docCommands; every command gets --help, as
// urfave/cli adds it, and the top --version.
func cliTree(app *cli.App) *docCommand {
	top := &docCommand{usage: app.Usage, description: app.Description,
		flags: convertFlags(append(slices.Clone(app.Flags), cli.HelpFlag, cli.VersionFlag))}
	var walk func(parent *docCommand, cmds []*cli.Command)
	walk = func(parent *docCommand, cmds []*cli.Command) {
		for _, c := range cmds {
			// urfave/cli adds a help subcommand to the command it runs.
			if c.Hidden || c.Name == "help" {
				continue
			}
			n := &docCommand{path: append(slices.Clone(parent.path), c.Name), usage: c.Usage, description: c.Description,
				args: c.ArgsUsage, argChoices: argChoices[c.Name], flags: convertFlags(append(slices.Clone(c.Flags), cli.HelpFlag))}
			parent.subs = append(parent.subs, n)
			walk(n, c.Subcommands)
		}
	}
	walk(top, app.Commands)
	return top
}

func convertFlags(flags []cli.Flag) []docFlag {
	var out []docFlag
	seen := map[string]bool{} // urfave/cli adds --help itself once set up
	for _, f := range flags {
		names := f.Names()
		if seen[names[0]] {
			continue
		}
		seen[names[0]] = true
		cf := docFlag{long: names[0], aliases: names[1:]}
		if d, ok := f.(cli.DocGenerationFlag); ok {
			cf.usage = d.GetUsage()
			if d.TakesValue() {
				cf.value = "VALUE"
				cf.def = strings.Trim(d.GetDefaultText(), `"`)
			}
		}
		// `NAME` in a usage names the value (urfave/cli's convention).
		if i := strings.IndexByte(cf.usage, '`'); i >= 0 {
			if j := strings.IndexByte(cf.usage[i+1:], '`'); j >= 0 {
				name := cf.usage[i+1 : i+1+j]
				cf.usage = cf.usage[:i] + name + cf.usage[i+1+j+1:]
				if cf.value != "" {
					cf.value = name
				}
			}
		}
		cf.choices = flagChoices(cf.long)
		cf.file = fileFlags[cf.long]
		out = append(out, cf)
	}
	return out
}

// all lists c and every command below it, depth first.
func (c *docCommand) all() []*docCommand {
	out := []*docCommand{c}
	for _, s := range c.subs {
		out = append(out, s.all()...)
	}
	return out
}

// names are the flag's spellings on a command line: --long, -s.
func (f docFlag) names() []string {
	out := []string{"--" + f.long}
	for _, a := range f.aliases {
		if len(a) == 1 {
			out = append(out, "-"+a)
		} else {
			out = append(out, "--"+a)
		}
	}
	return out
}

// name is the command's words joined with "/" under "conntrace": the key
// the completion scripts find it by ("conntrace/deploy/kubernetes").
func (c *docCommand) name() string {
	return strings.Join(append([]string{"conntrace"}, c.path...), "/")
}
