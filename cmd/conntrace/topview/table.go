// SPDX-License-Identifier: Apache-2.0

// Package topview draws `conntrace top`'s tables from a top.Snapshot: as
// text every interval (--batch), as JSON, or as a full-screen view
// (bubbletea) a user moves around in.
package topview

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/conntrace/conntrace/tracer/audit"
	"github.com/conntrace/conntrace/tracer/output"
	"github.com/conntrace/conntrace/tracer/top"
)

// Column is one column of a table.
type Column struct {
	Title string
	// Num: sorted as a number, largest first, and aligned right; else as
	// text, A first.
	Num bool
}

// Cell is a value as shown (S, escaped) and as sorted (N, for a Num
// column).
type Cell struct {
	S string
	N float64
}

// Level says how much a row needs attention.
type Level uint8

const (
	Normal Level = iota
	Warn         // above 50% of a limit
	Crit         // above 80%
)

// Row is one line of a table.
type Row struct {
	Cells []Cell
	Key   top.Key
	Keyed bool      // Key names a row of the aggregator (not "(other)")
	Level Level     // how much it needs attention
	Spark []float64 // the last intervals' rate, oldest first
	Name  string    // what the row is, in words (escaped): the title of its events
	last  bool      // kept last whatever the sort ("(other)")
}

// Table is a view's rows under its columns.
type Table struct {
	Title string
	Cols  []Column
	Rows  []Row
	// Sort is the column rows are sorted by (-1: as built); Reverse
	// turns the order round.
	Sort    int
	Reverse bool
	// Spark: the rows have a sparkline (Row.Spark) of SparkOf (default:
	// connections/s).
	Spark   bool
	SparkOf string
}

// SortRows sorts by column col (a Num column largest first, text A
// first), then by the row's text; reverse turns it round. "(other)" rows
// stay last.
func (t *Table) SortRows(col int, reverse bool) {
	t.Sort, t.Reverse = col, reverse
	if col < 0 || col >= len(t.Cols) {
		return
	}
	num := t.Cols[col].Num
	slices.SortStableFunc(t.Rows, func(a, b Row) int {
		if a.last != b.last {
			if a.last {
				return 1
			}
			return -1
		}
		var c int
		if num {
			c = cmp.Compare(b.Cells[col].N, a.Cells[col].N)
		} else {
			c = cmp.Compare(a.Cells[col].S, b.Cells[col].S)
		}
		if reverse {
			c = -c
		}
		return c
	})
}

// Filter keeps the rows with s in any cell (case is ignored); "" keeps all.
func (t *Table) Filter(s string) {
	if s == "" {
		return
	}
	s = strings.ToLower(s)
	t.Rows = slices.DeleteFunc(t.Rows, func(r Row) bool {
		for _, c := range r.Cells {
			if strings.Contains(strings.ToLower(c.S), s) {
				return false
			}
		}
		return true
	})
}

// Widths are the columns' widths: each its widest cell or title; the
// last column is not padded.
func (t *Table) Widths() []int {
	w := make([]int, len(t.Cols))
	for i, c := range t.Cols {
		w[i] = width(c.Title)
	}
	for _, r := range t.Rows {
		for i, c := range r.Cells {
			w[i] = max(w[i], width(c.S))
		}
	}
	return w
}

// Line lays cells out in widths, two spaces apart.
func Line(cols []Column, widths []int, cells []string) string {
	var b strings.Builder
	for i, s := range cells {
		if i > 0 {
			b.WriteString("  ")
		}
		pad := widths[i] - width(s)
		if cols[i].Num && pad > 0 {
			b.WriteString(strings.Repeat(" ", pad))
		}
		b.WriteString(s)
		if !cols[i].Num && pad > 0 && i < len(cells)-1 {
			b.WriteString(strings.Repeat(" ", pad))
		}
	}
	return b.String()
}

// width is s's width on a terminal: escaped strings are ASCII but for µ
// and the sparkline, one column each.
func width(s string) int { return utf8.RuneCountInString(s) }

func titles(cols []Column) []string {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = c.Title
	}
	return s
}

func texts(cells []Cell) []string {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = c.S
	}
	return s
}

// safe escapes an attacker-controlled string for a terminal.
func safe(s string) string { return string(output.AppendTextSafe(nil, s)) }

func text(s string) Cell { return Cell{S: safe(s)} }

// rate is a per-second figure: one decimal below 10, whole above, then
// k and M.
func rate(v float64) Cell { return Cell{S: short(v, ""), N: v} }

// count is a whole number: as it is below 10,000, then k and M.
func count(v uint64) Cell {
	if v < 10_000 {
		return Cell{S: strconv.FormatUint(v, 10), N: float64(v)}
	}
	return Cell{S: short(float64(v), ""), N: float64(v)}
}

func short(v float64, unit string) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + unit
	case v < 10_000:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64) + unit
	case v < 10_000_000:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k" + unit
	}
	return strconv.FormatFloat(v/1e6, 'f', 0, 64) + "M" + unit
}

// byteCount is a byte count or rate: B, KiB, MiB, GiB.
func byteCount(v float64) Cell {
	s := "0"
	switch {
	case v >= 1<<30:
		s = strconv.FormatFloat(v/(1<<30), 'f', 1, 64) + "G"
	case v >= 1<<20:
		s = strconv.FormatFloat(v/(1<<20), 'f', 1, 64) + "M"
	case v >= 1<<10:
		s = strconv.FormatFloat(v/(1<<10), 'f', 1, 64) + "K"
	case v > 0:
		s = strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	return Cell{S: s, N: v}
}

// latency is microseconds as µs, ms or s; "-" for none.
func latency(us *float64) Cell {
	if us == nil {
		return Cell{S: "-", N: -1}
	}
	v := *us
	var s string
	switch {
	case v < 1000:
		s = strconv.FormatFloat(v, 'f', 0, 64) + "µs"
	case v < 1e6:
		s = strconv.FormatFloat(v/1e3, 'f', 1, 64) + "ms"
	default:
		s = strconv.FormatFloat(v/1e6, 'f', 1, 64) + "s"
	}
	return Cell{S: s, N: v}
}

// errorsCell lists failures by error, most first: "ECONNREFUSED:3,ETIMEDOUT:1".
func errorsCell(m map[string]uint64) Cell {
	type e struct {
		name string
		n    uint64
	}
	var l []e
	var total uint64
	for k, v := range m {
		l = append(l, e{k, v})
		total += v
	}
	slices.SortFunc(l, func(a, b e) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.name, b.name)) })
	var parts []string
	for _, x := range l {
		parts = append(parts, x.name+":"+strconv.FormatUint(x.n, 10))
	}
	if len(parts) == 0 {
		return Cell{S: "-"}
	}
	return Cell{S: strings.Join(parts, ","), N: float64(total)}
}

func hostPort(addr string, port uint16) string {
	if a, err := netip.ParseAddr(addr); err == nil {
		return netip.AddrPortFrom(a, port).String()
	}
	return addr
}

var figureCols = []Column{{"IN/S", true}, {"OUT/S", true}, {"ACTIVE", true}, {"FAIL/S", true}, {"ERRORS", false},
	{"TX/S", true}, {"RX/S", true}, {"RETRANS", true}, {"P50", true}, {"P99", true}}

func figureCells(f *top.Figures) []Cell {
	return []Cell{rate(f.InPerS), rate(f.OutPerS), {S: strconv.FormatInt(f.Active, 10), N: float64(f.Active)},
		rate(f.FailuresPerS), errorsCell(f.Errors), byteCount(f.TxPerS), byteCount(f.RxPerS), count(f.Retransmits),
		latency(f.LatencyP50), latency(f.LatencyP99)}
}

func figureTable(title string, lead ...Column) *Table {
	return &Table{Title: title, Cols: append(lead, figureCols...), Sort: -1, Spark: true, SparkOf: "CONN/S"}
}

func figureRow(lead []Cell, f *top.Figures) Row {
	return Row{Cells: append(lead, figureCells(f)...), Key: f.Key(), Keyed: !f.Other, Spark: f.History, last: f.Other}
}

// Processes is the processes table.
func Processes(s *top.Snapshot) *Table {
	t := figureTable("PROCESSES", Column{"PID", true}, Column{"COMM", false}, Column{"CONTAINER", false})
	for i := range s.Processes {
		p := &s.Processes[i]
		pid := Cell{S: strconv.FormatUint(uint64(p.PID), 10), N: float64(p.PID)}
		if p.Other {
			pid = Cell{S: "-"}
		}
		r := figureRow([]Cell{pid, text(p.Comm), text(orDash(p.Container))}, &p.Figures)
		r.Name = "process " + pid.S + " " + safe(p.Comm)
		t.Rows = append(t.Rows, r)
	}
	return t
}

// Containers is the containers table.
func Containers(s *top.Snapshot) *Table {
	t := figureTable("CONTAINERS", Column{"CONTAINER", false}, Column{"ID", false})
	for i := range s.Containers {
		c := &s.Containers[i]
		r := figureRow([]Cell{text(c.Container), text(orDash(shortID(c.ID)))}, &c.Figures)
		r.Name = "container " + safe(c.Container)
		t.Rows = append(t.Rows, r)
	}
	return t
}

// Peers is the peers table: PEER is an outbound peer's address and port,
// or an inbound one's address and "-> :PORT", the local port it came to.
func Peers(s *top.Snapshot) *Table {
	t := figureTable("PEERS", Column{"PEER", false}, Column{"DIR", false}, Column{"PROTO", false}, Column{"NAME", false})
	for i := range s.Peers {
		p := &s.Peers[i]
		peer := hostPort(p.Addr, p.Port)
		if p.Direction == "in" {
			peer = p.Addr + " -> :" + strconv.Itoa(int(p.Port))
		}
		// Addresses are the kernel's, not a process's words: no escaping.
		r := figureRow([]Cell{{S: peer}, text(orDash(p.Direction)), text(orDash(p.Proto)), text(orDash(p.Name))},
			&p.Figures)
		r.Name = "peer " + peer + " (" + p.Direction + ", " + p.Proto + ")"
		t.Rows = append(t.Rows, r)
	}
	return t
}

// Failures is the failures table, one row per (process, peer, cause).
func Failures(s *top.Snapshot) *Table {
	t := &Table{Title: "FAILURES", Sort: -1, Spark: true, SparkOf: "FAILURES/S", Cols: []Column{{"COUNT", true}, {"PER/S", true}, {"LAST", false}, {"PID", true}, {"COMM", false},
		{"EVENT", false}, {"PEER", false}, {"ERROR", false}, {"EXPLANATION", false}}}
	for i := range s.Failures {
		f := &s.Failures[i]
		peer := hostPort(f.Addr, f.Port)
		if f.Name != "" {
			peer = safe(f.Name) + " @" + peer
		}
		t.Rows = append(t.Rows, Row{Cells: []Cell{count(f.Count), rate(f.PerS), {S: f.Last.Local().Format("15:04:05"), N: float64(f.Last.UnixNano())},
			{S: strconv.FormatUint(uint64(f.PID), 10), N: float64(f.PID)}, text(f.Comm), text(orDash(f.Event)), {S: peer}, text(orDash(f.Error)),
			{S: f.Explain}}, Key: f.Key(), Keyed: !f.Other, last: f.Other, Spark: f.History,
			Name: f.Event + " " + f.Error + " of " + strconv.FormatUint(uint64(f.PID), 10) + " " + safe(f.Comm) + " at " + peer})
	}
	return t
}

// Listeners is the listening ports' table.
func Listeners(s *top.Snapshot) *Table {
	t := &Table{Title: "LISTENERS", Sort: -1, Spark: true, SparkOf: "ACCEPTS/S", Cols: []Column{{"PORT", true}, {"PROTO", false}, {"ADDRESS", false}, {"PID", true}, {"COMM", false},
		{"CONTAINER", false}, {"ACCEPTS/S", true}, {"ACCEPTS", true}, {"ACTIVE", true}, {"QUEUE FULL", true}}}
	for i := range s.Listeners {
		l := &s.Listeners[i]
		t.Rows = append(t.Rows, Row{Cells: []Cell{{S: strconv.Itoa(int(l.Port)), N: float64(l.Port)}, text(orDash(l.Proto)), text(orDash(l.Addr)),
			{S: strconv.FormatUint(uint64(l.PID), 10), N: float64(l.PID)}, text(l.Comm), text(orDash(l.Container)),
			rate(l.AcceptsPS), count(l.Accepts), {S: strconv.FormatInt(l.Active, 10), N: float64(l.Active)}, count(l.QueueFull)},
			Key: l.Key(), Keyed: !l.Other, last: l.Other, Level: queueLevel(l.QueueFull), Spark: l.History,
			Name: "port " + strconv.Itoa(int(l.Port)) + "/" + l.Proto})
	}
	return t
}

// queueLevel: a listener whose full accept queue made a connect fail
// needs attention.
func queueLevel(n uint64) Level {
	if n > 0 {
		return Crit
	}
	return Normal
}

// Ephemeral is the ephemeral ports each destination holds (audit's
// figures), with Warn above 50% of the usable range and Crit above 80%.
func Ephemeral(r *audit.Report) *Table {
	t := &Table{Title: "EPHEMERAL PORTS PER DESTINATION", Sort: -1, Cols: []Column{{"SOURCE", false}, {"DESTINATION", false}, {"IN USE", true},
		{"USABLE", true}, {"USE%", true}, {"PEAK%", true}, {"TIME_WAIT", true}, {"OPENED/S", true}, {"PROCESSES", false}}}
	if r == nil {
		return t
	}
	for _, d := range r.Destinations {
		lvl := Normal
		if d.PeakPct > 80 || d.UsePct > 80 {
			lvl = Crit
		} else if d.PeakPct > 50 || d.UsePct > 50 {
			lvl = Warn
		}
		var procs []string
		for _, p := range d.Processes {
			procs = append(procs, p.String())
		}
		t.Rows = append(t.Rows, Row{Cells: []Cell{text(d.SAddr), text(hostPort(d.DAddr, d.DPort)), count(uint64(d.InUse)), count(uint64(d.Usable)),
			{S: strconv.FormatFloat(d.UsePct, 'f', 1, 64), N: d.UsePct}, {S: strconv.FormatFloat(d.PeakPct, 'f', 1, 64), N: d.PeakPct},
			count(uint64(d.TimeWait)), rate(d.OpenedPerS), {S: orDash(strings.Join(procs, ","))}}, Level: lvl})
	}
	return t
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Header is the line above the tables: the time, events, losses (never
// hidden) and the hook mode.
func Header(s *top.Snapshot, hooks string) string {
	h := fmt.Sprintf("conntrace top %s  interval %.2fs  events %d (%s/s)  lost %d  hooks %s",
		s.Time.Local().Format("15:04:05"), s.Interval, s.Events, short(s.EventsPerS, ""), s.Lost, hooks)
	if s.OtherEvents > 0 {
		h += fmt.Sprintf("  full tables: %d events in (other) rows", s.OtherEvents)
	}
	return h
}
