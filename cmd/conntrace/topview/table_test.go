// SPDX-License-Identifier: Apache-2.0

package topview

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/conntrace/conntrace/tracer/top"
)

func ptr(v float64) *float64 { return &v }

func snapshot() *top.Snapshot {
	return &top.Snapshot{Time: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC), Interval: 1, Events: 12, EventsPerS: 12,
		Processes: []top.ProcRow{
			{PID: 7, Comm: "\x1b[2Jevil", Container: "c\x07t", Figures: top.Figures{OutPerS: 2, Active: 1, Connections: 2,
				LatencyP50: ptr(208), LatencyP99: ptr(9216), TxPerS: 1536, Errors: map[string]uint64{"ETIMEDOUT": 1, "ECONNREFUSED": 3}}},
			{PID: 12, Comm: "api", Figures: top.Figures{InPerS: 12.5, Connections: 13}},
		},
		Failures: []top.FailureRow{{PID: 7, Comm: "curl", Event: "dns", Proto: "udp", Addr: "198.18.0.2", Port: 53,
			Name: "\x1b]0;pwned\x07.example", Error: "NXDOMAIN", Count: 1, Explain: "NXDOMAIN: ..."}},
	}
}

// TestCells: numbers as people read them, names escaped.
func TestCells(t *testing.T) {
	p := Processes(snapshot())
	got := strings.Join(texts(p.Rows[0].Cells), "|")
	want := `7|\x1b[2Jevil|c\x07t|0|2.0|1|0|ECONNREFUSED:3,ETIMEDOUT:1|1.5K|0|0|208µs|9.2ms`
	if got != want {
		t.Errorf("row\n%s, want\n%s", got, want)
	}
	f := Failures(snapshot())
	if peer := f.Rows[0].Cells[6].S; peer != `\x1b]0;pwned\x07.example @198.18.0.2:53` {
		t.Errorf("peer %q", peer)
	}
	for _, c := range []struct {
		v    float64
		want string
	}{{0, "0"}, {0.25, "0.2"}, {9.96, "10.0"}, {12.5, "13"}, {9999, "9999"}, {12345, "12k"}, {12_345_678, "12M"}} {
		if got := rate(c.v).S; got != c.want {
			t.Errorf("rate(%v) %q, want %q", c.v, got, c.want)
		}
	}
}

// TestSortFilter: a column's sort, reversed, the filter, "(other)" last.
func TestSortFilter(t *testing.T) {
	s := snapshot()
	// The overflow row, and a process that named itself like it.
	s.Processes = append(s.Processes, top.ProcRow{Comm: top.Other, Figures: top.Figures{InPerS: 100, Other: true}},
		top.ProcRow{PID: 9, Comm: top.Other, Figures: top.Figures{InPerS: 50}})
	p := Processes(s)
	p.SortRows(3, false) // IN/S, largest first; the overflow row stays last
	if p.Rows[0].Cells[0].S != "9" || !p.Rows[0].Keyed || p.Rows[1].Cells[1].S != "api" || p.Rows[3].Cells[0].S != "-" || p.Rows[3].Keyed {
		t.Errorf("by IN/S: %v", p.Rows)
	}
	p.Rows = slices.DeleteFunc(p.Rows, func(r Row) bool { return r.Cells[0].S == "9" })
	p.SortRows(1, true) // COMM, Z first
	if p.Rows[0].Cells[1].S != "api" || p.Rows[1].Cells[1].S != `\x1b[2Jevil` {
		t.Errorf("by COMM reversed: %v", p.Rows)
	}
	p.Filter("EVIL")
	if len(p.Rows) != 1 || p.Rows[0].Cells[0].S != "7" {
		t.Errorf("filtered: %v", p.Rows)
	}
}

// TestOutputsEscaped: batch text and the full screen carry no byte a
// terminal would act on but the screen's own; JSON keeps the names.
func TestOutputsEscaped(t *testing.T) {
	var b bytes.Buffer
	if err := (&Batch{W: &b, Hooks: "tracepoint"}).Write(snapshot(), nil); err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(b.Bytes(), "\x1b\x07") {
		t.Errorf("batch:\n%q", b.String())
	}
	m := NewModel(top.New(top.Config{}), nil, "tracepoint", time.Second, 0)
	m.snap = snapshot()
	for _, v := range []string{"1", "3"} {
		m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(v)})
		if screen := m.View(); strings.Contains(screen, "\x07") || strings.Contains(screen, "evil\x1b") || strings.Contains(screen, "[2Jevil") && !strings.Contains(screen, `\x1b[2Jevil`) {
			t.Errorf("view %s:\n%q", v, screen)
		}
	}
	b.Reset()
	if err := WriteJSON(&b, snapshot(), nil, "tracepoint", 0); err != nil {
		t.Fatal(err)
	}
	var j struct {
		Processes []struct{ Comm string }
		Ephemeral []any
	}
	if err := json.Unmarshal(b.Bytes(), &j); err != nil || j.Processes[0].Comm != "\x1b[2Jevil" || j.Ephemeral == nil {
		t.Errorf("json %v: %s", err, b.String())
	}
}

func TestSparkline(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		n    int
		want string
	}{
		{nil, 20, ""},
		{[]float64{0, 1, 2, 4, 8}, 20, " ▁▂▄█"},
		{[]float64{1, 0, 0, 0}, 2, "█ "},
		{[]float64{0, 0, 3}, 20, "  █"},
	} {
		if got := sparkline(c.in, c.n); got != c.want {
			t.Errorf("sparkline(%v, %d) %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
