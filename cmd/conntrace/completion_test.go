// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/output"
)

// generated runs conntrace ARGS and returns what it printed.
func generated(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"conntrace"}, args...), &stdout, &stderr); code != exitOK {
		t.Fatalf("conntrace %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.String()
}

// everyFlag lists, from the CLI's definitions, each command's path and
// the spellings of its flags (--long and -s), --help included.
func everyFlag() map[string][]string {
	out := map[string][]string{}
	spellings := func(flags []cli.Flag) []string {
		var s []string
		for _, f := range append(flags, cli.HelpFlag) {
			for _, n := range f.Names() {
				if len(n) == 1 {
					s = append(s, "-"+n)
				} else {
					s = append(s, "--"+n)
				}
			}
		}
		return s
	}
	app := newApp(nil, nil)
	out[""] = spellings([]cli.Flag{cli.VersionFlag})
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			path := strings.TrimPrefix(prefix+" "+c.Name, " ")
			out[path] = spellings(c.Flags)
			walk(path, c.Subcommands)
		}
	}
	walk("", app.Commands)
	return out
}

// TestCompletionAndManCoverEveryFlag: every flag of every command, in
// every spelling, is in the bash, zsh and fish scripts and the man page,
// under its command; the values of -o, --events and --hooks are offered.
func TestCompletionAndManCoverEveryFlag(t *testing.T) {
	bash, zsh, fish := generated(t, "completion", "bash"), generated(t, "completion", "zsh"), generated(t, "completion", "fish")
	man := generated(t, "man")
	flags := everyFlag()
	if len(flags) < 14 {
		t.Fatalf("only %d commands: %v", len(flags), flags)
	}
	for path, names := range flags {
		key := strings.TrimSuffix("conntrace/"+strings.ReplaceAll(path, " ", "/"), "/")
		bashOpts := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(key) + `\) opts='([^']*)'`).FindStringSubmatch(bash)
		zshFunc := regexp.MustCompile(`(?s)\n_` + regexp.QuoteMeta(strings.NewReplacer("/", "_", "-", "_").Replace(key)) + `\(\) \{\n(.*?)\n\}\n`).FindStringSubmatch(zsh)
		manSection := man
		if path != "" {
			start := strings.Index(man, `.SS "conntrace `+roff(path))
			if start < 0 {
				t.Errorf("man: no section for %q", path)
				continue
			}
			manSection = man[start+4:]
			if end := strings.Index(manSection, "\n.S"); end >= 0 {
				manSection = manSection[:end]
			}
		} else {
			manSection = man[strings.Index(man, ".SH OPTIONS"):strings.Index(man, ".SH COMMANDS")]
		}
		if bashOpts == nil || zshFunc == nil {
			t.Errorf("%q: bash (%v) or zsh (%v) has no entry", key, bashOpts != nil, zshFunc != nil)
			continue
		}
		for _, n := range names {
			if !strings.Contains(" "+bashOpts[1]+" ", " "+n+" ") {
				t.Errorf("bash: %s has no %s", key, n)
			}
			if !strings.Contains(zshFunc[1], "'"+n+"[") {
				t.Errorf("zsh: %s has no %s", key, n)
			}
			fishFlag := " -l " + strings.TrimPrefix(n, "--")
			if len(n) == 2 {
				fishFlag = " -s " + n[1:]
			}
			if !regexp.MustCompile(`(?m)^complete -c conntrace -n '__conntrace_is ` + regexp.QuoteMeta(key) + `'.*` + regexp.QuoteMeta(fishFlag) + ` `).MatchString(fish) {
				t.Errorf("fish: %s has no %s", key, n)
			}
			if !strings.Contains(manSection, `\fB`+roff(n)+`\fR`) {
				t.Errorf("man: %q has no %s", path, n)
			}
		}
	}
	for _, values := range []string{"text json", "listen connect accept close connect_fail bind_fail", "auto fentry kprobe tracepoint"} {
		for shell, script := range map[string]string{"bash": bash, "zsh": zsh, "fish": fish} {
			if !strings.Contains(script, values) {
				t.Errorf("%s: the values %q are not offered", shell, values)
			}
		}
	}
}

// TestCompletionShells runs each script in its shell: bash and fish
// complete real command lines; zsh parses its script (completing needs
// an interactive zsh). The shells are installed by make test.
func TestCompletionShells(t *testing.T) {
	for _, sh := range completionShells {
		if _, err := exec.LookPath(sh); err != nil {
			t.Fatalf("%s is missing: make deps installs it", sh)
		}
	}
	dir := t.TempDir()
	for _, sh := range completionShells {
		os.WriteFile(filepath.Join(dir, sh), []byte(generated(t, "completion", sh)), 0o644)
	}
	for _, c := range []struct {
		line []string // the words, the last the one being completed
		want string
	}{
		{[]string{""}, "watch top serve audit ports who doctor deploy version completion man"},
		{[]string{"top", "-o", ""}, "text json"},
		{[]string{"top", "--hooks", ""}, "auto fentry kprobe tracepoint"},
		{[]string{"watch", "--hooks", ""}, "auto fentry kprobe tracepoint"},
		{[]string{"watch", "-o", ""}, "text json"},
		{[]string{"audit", "--output", "j"}, "json"},
		{[]string{"watch", "--events", "c"}, "connect close connect_fail"},
		{[]string{"serve", "--labels", ""}, "comm container port none"},
		{[]string{"watch", "--fa"}, "--failures"},
		{[]string{"deploy", ""}, "kubernetes systemd rules dashboard"},
		{[]string{"deploy", "kubernetes", "--p"}, "--port --podmonitor"},
		{[]string{"completion", ""}, "bash zsh fish"},
		{[]string{"watch", "--port", ""}, ""},
	} {
		words := append([]string{"conntrace"}, c.line...)
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = shellQuote(w)
		}
		bash := exec.Command("bash", "-c", `source "$1"; COMP_WORDS=(`+strings.Join(quoted, " ")+`); COMP_CWORD=`+
			strconv.Itoa(len(words)-1)+`; _conntrace; echo "${COMPREPLY[*]}"`, "bash", filepath.Join(dir, "bash"))
		if out, err := bash.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != c.want {
			t.Errorf("bash: %q completes to %q (%v), want %q", words, out, err, c.want)
		}
		fish := exec.Command("fish", "--no-config", "-c", `source $argv[1]; complete -C$argv[2]`, filepath.Join(dir, "fish"), strings.Join(words, " "))
		out, err := fish.CombinedOutput()
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if w, _, _ := strings.Cut(line, "\t"); w != "" {
				got = append(got, w)
			}
		}
		// fish sorts the candidates.
		want := strings.Fields(c.want)
		slices.Sort(want)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("fish: %q completes to %q (%v), want %q", words, got, err, want)
		}
	}
	if out, err := exec.Command("zsh", "-n", filepath.Join(dir, "zsh")).CombinedOutput(); err != nil {
		t.Errorf("zsh -n: %v\n%s", err, out)
	}
}

// TestManPage: the man page renders without a warning from groff.
func TestManPage(t *testing.T) {
	if _, err := exec.LookPath("groff"); err != nil {
		t.Fatal("groff is missing: make deps installs it")
	}
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(generated(t, "man"))
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff: %v\n%s", err, out)
	}
}

// TestFlagChoicesParse: flagChoices keeps its own lists for -o and
// --labels (their parsers hold theirs in a switch): every value the
// completions and the man page offer is one the flag's parser takes, and
// its error for a bad value names each of them.
func TestFlagChoicesParse(t *testing.T) {
	parsers := map[string]func(string) error{
		"output": func(s string) error { _, err := output.ParseFormat(s); return err },
		"events": func(s string) error { _, err := tracer.ParseEvents(s); return err },
		"hooks":  func(s string) error { _, err := tracer.ParseHooks(s); return err },
		"labels": func(s string) error { _, err := parseLabels(s); return err },
	}
	for name, parse := range parsers {
		choices := flagChoices(name)
		if len(choices) == 0 {
			t.Errorf("--%s: no choices offered", name)
		}
		for _, c := range choices {
			if err := parse(c); err != nil {
				t.Errorf("--%s %s is offered but refused: %v", name, c, err)
			}
		}
		err := parse("bogus")
		if err == nil {
			t.Fatalf("--%s bogus: accepted", name)
		}
		for _, c := range choices {
			if !strings.Contains(err.Error(), c) {
				t.Errorf("--%s: the error %q does not name %q", name, err, c)
			}
		}
	}
}
