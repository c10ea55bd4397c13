// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionShells are the shells `conntrace completion` writes for.
var completionShells = []string{"bash", "zsh", "fish"}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: bash, zsh or fish",
		ArgsUsage: "SHELL",
		Description: `bash: source <(conntrace completion bash), or save it as
/usr/share/bash-completion/completions/conntrace. zsh: save it as _conntrace
in a directory of $fpath. fish: save it as
~/.config/fish/completions/conntrace.fish. The .deb installs all three.`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("completion takes one argument, the shell: bash, zsh or fish")
			}
			tree := cliTree(c.App)
			switch shell := c.Args().First(); shell {
			case "bash":
				return writeBash(c.App.Writer, tree)
			case "zsh":
				return writeZsh(c.App.Writer, tree)
			case "fish":
				return writeFish(c.App.Writer, tree)
			default:
				return usagef("completion: unknown shell %q (want bash, zsh or fish)", shell)
			}
		},
		OnUsageError: onUsageError,
	}
}

// shellQuote quotes s for sh, bash and zsh: in single quotes, each quote
// inside closed, escaped and reopened.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// oneLine is a description on one line, without the backquotes
// urfave/cli marks placeholders with.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "`", "")), " ")
}

func writeBash(w io.Writer, top *docCommand) error {
	var b strings.Builder
	b.WriteString(`# bash completion for conntrace: conntrace completion bash
# (written from conntrace's own command definitions)
_conntrace() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local path=conntrace i opts="" subs=""
    # The (sub)command: the words before the cursor that name one.
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "$path/${COMP_WORDS[i]}" in
`)
	var paths []string
	for _, c := range top.all()[1:] {
		paths = append(paths, c.name())
	}
	fmt.Fprintf(&b, "        %s) path=$path/${COMP_WORDS[i]} ;;\n", strings.Join(paths, "|"))
	b.WriteString("        esac\n    done\n    # A flag's value.\n    case \"$path $prev\" in\n")
	for _, c := range top.all() {
		for _, f := range c.flags {
			if f.value == "" {
				continue
			}
			var pats []string
			for _, n := range f.names() {
				pats = append(pats, shellQuote(c.name()+" "+n))
			}
			action := "return 0" // a value nobody can guess
			switch {
			case f.choices != nil:
				action = "COMPREPLY=($(compgen -W " + shellQuote(strings.Join(f.choices, " ")) + ` -- "$cur")); return 0`
			case f.file:
				action = `compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")); return 0`
			}
			fmt.Fprintf(&b, "        %s) %s ;;\n", strings.Join(pats, "|"), action)
		}
	}
	b.WriteString("    esac\n    case \"$path\" in\n")
	for _, c := range top.all() {
		var opts, subs []string
		for _, f := range c.flags {
			opts = append(opts, f.names()...)
		}
		for _, s := range c.subs {
			subs = append(subs, s.path[len(s.path)-1])
		}
		subs = append(subs, c.argChoices...)
		fmt.Fprintf(&b, "        %s) opts=%s subs=%s ;;\n", c.name(), shellQuote(strings.Join(opts, " ")), shellQuote(strings.Join(subs, " ")))
	}
	b.WriteString(`    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    fi
}
complete -F _conntrace conntrace
`)
	_, err := io.WriteString(w, b.String())
	return err
}

// zshSpec is f's _arguments specs: -s and --long, each with the
// description, and the value's name and completion.
func zshSpec(f docFlag) []string {
	desc := strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`).Replace(oneLine(f.usage))
	action := ""
	if f.value != "" {
		val := strings.ReplaceAll(f.value, ":", `\:`)
		switch {
		case f.choices != nil:
			action = ":" + val + ":(" + strings.Join(f.choices, " ") + ")"
		case f.file:
			action = ":" + val + ":_files"
		default:
			action = ":" + val + ": "
		}
	}
	var specs []string
	for _, n := range f.names() {
		specs = append(specs, shellQuote(n+"["+desc+"]"+action))
	}
	return specs
}

func zshFunc(c *docCommand) string {
	return "_" + strings.ReplaceAll(strings.ReplaceAll(c.name(), "/", "_"), "-", "_")
}

func writeZsh(w io.Writer, top *docCommand) error {
	var b strings.Builder
	b.WriteString("#compdef conntrace\n# zsh completion for conntrace: conntrace completion zsh\n# (written from conntrace's own command definitions)\n")
	cmds := top.all()
	slices.Reverse(cmds) // each function before its caller, the top last
	for _, c := range cmds {
		fmt.Fprintf(&b, "\n%s() {\n", zshFunc(c))
		var specs []string
		for _, f := range c.flags {
			specs = append(specs, zshSpec(f)...)
		}
		switch {
		case len(c.subs) > 0:
			b.WriteString("    local curcontext=$curcontext state line\n    local -a cmds\n")
			specs = append(specs, "'1: :->cmd'", "'*:: :->args'")
			fmt.Fprintf(&b, "    _arguments -C \\\n        %s\n", strings.Join(specs, " \\\n        "))
			b.WriteString("    case $state in\n    cmd)\n        cmds=(\n")
			for _, s := range c.subs {
				fmt.Fprintf(&b, "            %s\n", shellQuote(s.path[len(s.path)-1]+":"+oneLine(s.usage)))
			}
			b.WriteString("        )\n        _describe command cmds ;;\n    args)\n        case $line[1] in\n")
			for _, s := range c.subs {
				fmt.Fprintf(&b, "        %s) %s ;;\n", s.path[len(s.path)-1], zshFunc(s))
			}
			b.WriteString("        esac ;;\n    esac\n}\n")
		default:
			if c.argChoices != nil {
				specs = append(specs, shellQuote("1:"+c.args+":("+strings.Join(c.argChoices, " ")+")"))
			}
			fmt.Fprintf(&b, "    _arguments -s \\\n        %s\n}\n", strings.Join(specs, " \\\n        "))
		}
	}
	b.WriteString("\n_conntrace \"$@\"\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// fishQuote quotes s for fish: '...', with \ and ' escaped.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

func writeFish(w io.Writer, top *docCommand) error {
	var b strings.Builder
	b.WriteString(`# fish completion for conntrace: conntrace completion fish
# (written from conntrace's own command definitions)
function __conntrace_is --description 'is the (sub)command on the command line argv[1]?'
    set -l path conntrace
    for w in (commandline -opc)[2..-1]
        switch "$path/$w"
`)
	var paths []string
	for _, c := range top.all()[1:] {
		paths = append(paths, fishQuote(c.name()))
	}
	fmt.Fprintf(&b, "            case %s\n                set path \"$path/$w\"\n        end\n    end\n    test \"$path\" = \"$argv[1]\"\nend\n\ncomplete -c conntrace -f\n", strings.Join(paths, " "))
	for _, c := range top.all() {
		cond := fishQuote("__conntrace_is " + c.name())
		for _, s := range c.subs {
			fmt.Fprintf(&b, "complete -c conntrace -n %s -a %s -d %s\n", cond, s.path[len(s.path)-1], fishQuote(oneLine(s.usage)))
		}
		if c.argChoices != nil {
			fmt.Fprintf(&b, "complete -c conntrace -n %s -a %s\n", cond, fishQuote(strings.Join(c.argChoices, " ")))
		}
		for _, f := range c.flags {
			fmt.Fprintf(&b, "complete -c conntrace -n %s -l %s", cond, f.long)
			for _, a := range f.aliases {
				if len(a) == 1 {
					fmt.Fprintf(&b, " -s %s", a)
				} else {
					fmt.Fprintf(&b, " -l %s", a)
				}
			}
			switch {
			case f.choices != nil:
				fmt.Fprintf(&b, " -x -a %s", fishQuote(strings.Join(f.choices, " ")))
			case f.file:
				b.WriteString(" -r -F")
			case f.value != "":
				b.WriteString(" -x")
			}
			fmt.Fprintf(&b, " -d %s\n", fishQuote(oneLine(f.usage)))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
