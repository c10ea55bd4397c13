// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

func manCommand() *cli.Command {
	return &cli.Command{
		Name:  "man",
		Usage: "print the manual page (roff): conntrace man | man -l -",
		Action: func(c *cli.Context) error {
			if err := noArgs(c, ""); err != nil {
				return err
			}
			return writeMan(c.App.Writer, cliTree(c.App), versionInfo().Version)
		},
		OnUsageError: onUsageError,
	}
}

// roff escapes text for a roff text line: backslashes, minus signs (a
// plain - is a hyphen), and a . or ' where a request would start.
func roff(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffText writes a description: its lines filled, a blank line a new
// paragraph.
func roffText(b *strings.Builder, s string) {
	for _, para := range strings.Split(strings.ReplaceAll(s, "`", ""), "\n\n") {
		b.WriteString(".PP\n")
		for _, line := range strings.Split(strings.TrimSpace(para), "\n") {
			b.WriteString(roff(strings.TrimSpace(line)) + "\n")
		}
	}
}

func roffFlags(b *strings.Builder, flags []docFlag) {
	for _, f := range flags {
		var names []string
		for _, n := range f.names() {
			names = append(names, `\fB`+roff(n)+`\fR`)
		}
		b.WriteString(".TP\n" + strings.Join(names, ", "))
		if f.value != "" {
			b.WriteString(` \fI` + roff(f.value) + `\fR`)
		}
		b.WriteString("\n" + roff(oneLine(f.usage)))
		switch {
		case f.choices != nil:
			b.WriteString(roff(" (one of: " + strings.Join(f.choices, ", ")))
			if f.def != "" {
				b.WriteString(roff("; default " + f.def))
			}
			b.WriteString(")")
		case f.def != "":
			b.WriteString(roff(" (default: " + f.def + ")"))
		}
		b.WriteString("\n")
	}
}

// writeMan writes conntrace(8) from the CLI's definitions.
func writeMan(w io.Writer, top *docCommand, version string) error {
	var b strings.Builder
	b.WriteString(`.\" conntrace(8), written by "conntrace man" from its command definitions.` + "\n")
	fmt.Fprintf(&b, ".TH CONNTRACE 8 \"\" \"conntrace %s\" \"System Administration\"\n", roff(version))
	b.WriteString(".SH NAME\nconntrace \\- " + roff(top.usage) + "\n")
	b.WriteString(".SH SYNOPSIS\n.B conntrace\n.I command\n.RI [ options ]\n.RI [ arguments ]\n")
	b.WriteString(".SH DESCRIPTION\n")
	roffText(&b, `conntrace follows TCP connections with eBPF programs in the kernel: who
listens, who connects to whom and how long the handshake took, who accepts,
each close with its duration, bytes and reason, and every failed connect()
or bind() with its cause and, for a port in use, the process holding it.
IPv4 and IPv6; filters run in the kernel. It needs root (or CAP_BPF,
CAP_PERFMON and the capabilities doctor lists) and a kernel with BTF.

watch, serve's metrics, audit, ports, who, doctor and version are
contracts a script can rely on: -o json writes one JSON object per line,
with stable field names.`)
	b.WriteString(".SH OPTIONS\n")
	roffFlags(&b, top.flags)
	b.WriteString(".SH COMMANDS\n")
	for _, c := range top.all()[1:] {
		synopsis := "conntrace " + strings.Join(c.path, " ")
		if len(c.subs) > 0 {
			synopsis += " command"
		}
		if len(c.flags) > 1 {
			synopsis += " [options]"
		}
		if c.args != "" {
			synopsis += " " + c.args
		}
		fmt.Fprintf(&b, ".SS \"%s\"\n", roff(synopsis))
		roffText(&b, strings.ToUpper(c.usage[:1])+c.usage[1:]+".")
		if c.description != "" {
			roffText(&b, c.description)
		}
		roffFlags(&b, c.flags)
	}
	b.WriteString(`.SH EXIT STATUS
.TP
0
Success.
.TP
1
The run failed: the error is on stderr, on one line.
.TP
2
Bad flags or arguments.
.SH EXAMPLES
.TP
sudo conntrace watch \-\-port 443
The lifecycle of every connection on port 443, and every failure.
.TP
sudo conntrace watch \-\-failures \-o json
Every failed connect() and bind(), as JSON lines.
.TP
sudo conntrace who 8080
Who holds port 8080.
.TP
sudo conntrace doctor
What this kernel offers, and whether watch can run.
.SH SEE ALSO
.BR ss (8),
.BR lsof (8),
.BR bpftool (8)
`)
	_, err := io.WriteString(w, b.String())
	return err
}
