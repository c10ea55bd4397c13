// SPDX-License-Identifier: Apache-2.0

package topview

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"

	"github.com/conntrace/conntrace/tracer/audit"
	"github.com/conntrace/conntrace/tracer/top"
)

// Batch writes the tables every interval as text, like `top -b`: the
// header, then each table under its title (containers' only when there is
// one), up to Rows rows each (0: all), and a blank line.
type Batch struct {
	W     io.Writer
	Hooks string
	Rows  int
}

// Tables are the tables of a snapshot, in the order they are printed.
func Tables(s *top.Snapshot, r *audit.Report) []*Table {
	tables := []*Table{Processes(s)}
	if len(s.Containers) > 0 {
		tables = append(tables, Containers(s))
	}
	return append(tables, Peers(s), Failures(s), Listeners(s), Ephemeral(r))
}

// Write prints one interval's tables.
func (b *Batch) Write(s *top.Snapshot, r *audit.Report) error {
	var out strings.Builder
	out.WriteString(Header(s, b.Hooks))
	out.WriteString("\n")
	for _, t := range Tables(s, r) {
		rows := t.Rows
		if b.Rows > 0 && len(rows) > b.Rows {
			t.Rows = rows[:b.Rows]
		}
		out.WriteString("\n")
		out.WriteString(t.Title)
		if len(rows) > len(t.Rows) {
			out.WriteString(" (" + strconv.Itoa(len(t.Rows)) + " of " + strconv.Itoa(len(rows)) + ")")
		}
		out.WriteString("\n")
		w := t.Widths()
		out.WriteString(Line(t.Cols, w, titles(t.Cols)))
		out.WriteString("\n")
		for _, row := range t.Rows {
			out.WriteString(Line(t.Cols, w, texts(row.Cells)))
			out.WriteString("\n")
		}
	}
	out.WriteString("\n")
	_, err := io.WriteString(b.W, out.String())
	return err
}

// JSON is one interval's object of `top -o json`: the snapshot's fields,
// the hook mode and the ephemeral ports per destination.
type JSON struct {
	*top.Snapshot
	Hooks     string             `json:"hooks"`
	Ephemeral []audit.DestReport `json:"ephemeral"`
}

// WriteJSON writes one interval as one line of JSON, each table cut to
// rows (0: all).
func WriteJSON(w io.Writer, s *top.Snapshot, r *audit.Report, hooks string, rows int) error {
	j := JSON{Snapshot: s, Hooks: hooks, Ephemeral: []audit.DestReport{}}
	if r != nil && r.Destinations != nil {
		j.Ephemeral = r.Destinations
	}
	if rows > 0 {
		s.Processes = cut(s.Processes, rows)
		s.Containers = cut(s.Containers, rows)
		s.Peers = cut(s.Peers, rows)
		s.Failures = cut(s.Failures, rows)
		s.Listeners = cut(s.Listeners, rows)
		j.Ephemeral = cut(j.Ephemeral, rows)
	}
	// Empty tables are [], not null.
	s.Processes, s.Containers, s.Peers = nonNil(s.Processes), nonNil(s.Containers), nonNil(s.Peers)
	s.Failures, s.Listeners = nonNil(s.Failures), nonNil(s.Listeners)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(j)
}

func cut[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
