// SPDX-License-Identifier: Apache-2.0

package topview

import (
	"slices"
	"strconv"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/conntrace/conntrace/tracer/audit"
	"github.com/conntrace/conntrace/tracer/top"
)

type view int

const (
	viewProcs view = iota
	viewPeers
	viewFailures
	viewPorts
	nViews
)

var viewNames = [nViews]string{"processes", "peers", "failures", "ports"}

// Help is the key line at the foot of the screen.
const Help = "q quit  1-4/tab view  ←→ sort  r reverse  ↑↓ select  enter events  / filter  p pause  c processes/containers"

// Model is the full-screen view. The aggregator is ticked every interval
// on the program's own goroutine; drawing reads the snapshot the tick
// returned, never the aggregator.
type Model struct {
	agg      *top.Aggregator
	report   func() *audit.Report
	hooks    string
	interval time.Duration
	ticks    int // quit after this many intervals (0: never)

	snap    *top.Snapshot
	rep     *audit.Report
	view    view
	conts   bool // processes view: containers instead
	sort    [nViews + 1]int
	reverse [nViews + 1]bool
	cursor  int
	sel     top.Key // the selected row, kept across refreshes
	hasSel  bool
	filter  string
	editing bool
	paused  bool
	detail  bool
	dkey    top.Key
	dtitle  string
	dlines  []string
	width   int
	height  int
	ticked  int
}

// NewModel draws agg's snapshots; report, when not nil, gives the
// ephemeral ports per destination at each interval.
func NewModel(agg *top.Aggregator, report func() *audit.Report, hooks string, interval time.Duration, ticks int) *Model {
	m := &Model{agg: agg, report: report, hooks: hooks, interval: interval, ticks: ticks, width: 120, height: 30}
	for i := range m.sort {
		m.sort[i] = -1
	}
	return m
}

type tickMsg time.Time

// Stopped is the message that the tracer's run ended.
type Stopped struct{}

func (m *Model) tick() tea.Cmd {
	return tea.Tick(m.interval, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// Init starts the first interval.
func (m *Model) Init() tea.Cmd { return m.tick() }

// Update takes a key, a resize, an interval's end or the run's end.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tickMsg:
		s := m.agg.Tick(time.Time(msg))
		var r *audit.Report
		if m.report != nil {
			r = m.report()
		}
		if !m.paused || m.snap == nil {
			m.snap, m.rep = s, r
			if m.detail {
				m.dlines = m.agg.Recent(m.dkey, max(m.height-4, 1))
			}
		}
		m.ticked++
		if m.ticks > 0 && m.ticked >= m.ticks {
			return m, tea.Quit
		}
		return m, m.tick()
	case Stopped:
		return m, tea.Quit
	case tea.KeyMsg:
		return m, m.key(msg)
	}
	return m, nil
}

func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	s := k.String()
	if s == "ctrl+c" {
		return tea.Quit
	}
	if m.editing {
		switch k.Type {
		case tea.KeyEnter:
			m.editing = false
		case tea.KeyEsc:
			m.editing, m.filter = false, ""
		case tea.KeyBackspace:
			if r := []rune(m.filter); len(r) > 0 {
				m.filter = string(r[:len(r)-1])
			}
		case tea.KeyRunes, tea.KeySpace:
			m.filter += string(k.Runes)
		}
		m.cursor = 0
		return nil
	}
	if m.detail {
		switch s {
		case "q":
			return tea.Quit
		case "esc", "enter", "backspace", "left":
			m.detail = false
		case "1", "2", "3", "4":
			m.detail = false
			m.setView(view(s[0] - '1'))
		case "p":
			m.paused = !m.paused
		}
		return nil
	}
	t := m.table()
	switch s {
	case "q":
		return tea.Quit
	case "1", "2", "3", "4":
		m.setView(view(s[0] - '1'))
	case "tab":
		m.setView((m.view + 1) % nViews)
	case "shift+tab":
		m.setView((m.view + nViews - 1) % nViews)
	case "c":
		if m.view == viewProcs {
			m.conts = !m.conts
			m.cursor, m.hasSel = 0, false
		}
	case "right", ">":
		i := m.sortIndex()
		m.sort[i] = min(m.sort[i]+1, len(t.Cols)-1)
	case "left", "<":
		i := m.sortIndex()
		m.sort[i] = max(m.sort[i]-1, 0)
	case "r":
		m.reverse[m.sortIndex()] = !m.reverse[m.sortIndex()]
	case "up", "k":
		m.move(t, -1)
	case "down", "j":
		m.move(t, 1)
	case "pgup":
		m.move(t, -m.rowsShown())
	case "pgdown":
		m.move(t, m.rowsShown())
	case "home", "g":
		m.move(t, -len(t.Rows))
	case "end", "G":
		m.move(t, len(t.Rows))
	case "enter":
		if m.cursor < len(t.Rows) && t.Rows[m.cursor].Keyed {
			r := t.Rows[m.cursor]
			m.detail, m.dkey = true, r.Key
			m.dtitle = r.Name
			m.dlines = m.agg.Recent(m.dkey, max(m.height-4, 1))
		}
	case "/":
		m.editing = true
	case "p":
		m.paused = !m.paused
	case "esc":
		m.filter = ""
	}
	return nil
}

func (m *Model) setView(v view) {
	if v != m.view {
		m.view, m.cursor, m.hasSel = v, 0, false
	}
}

// sortIndex is where the current table's sort is kept: containers have
// their own.
func (m *Model) sortIndex() int {
	if m.view == viewProcs && m.conts {
		return int(nViews)
	}
	return int(m.view)
}

func (m *Model) move(t *Table, by int) {
	m.cursor = max(0, min(m.cursor+by, len(t.Rows)-1))
	if m.cursor < len(t.Rows) {
		m.sel, m.hasSel = t.Rows[m.cursor].Key, true
	}
}

// rowsShown is how many rows of the selectable table fit.
func (m *Model) rowsShown() int {
	n := m.height - 4
	if m.view == viewPorts {
		n = n/2 - 1
	}
	return max(n, 1)
}

// table is the current view's selectable table, sorted and filtered.
func (m *Model) table() *Table {
	s := m.snap
	if s == nil {
		s = &top.Snapshot{}
	}
	var t *Table
	switch m.view {
	case viewProcs:
		if m.conts {
			t = Containers(s)
		} else {
			t = Processes(s)
		}
	case viewPeers:
		t = Peers(s)
	case viewFailures:
		t = Failures(s)
	default:
		t = Listeners(s)
	}
	if m.sort[m.sortIndex()] >= 0 {
		t.SortRows(m.sort[m.sortIndex()], m.reverse[m.sortIndex()])
	}
	t.Filter(m.filter)
	// The selection follows its row when the rows move.
	if m.hasSel {
		for i, r := range t.Rows {
			if r.Key == m.sel {
				m.cursor = i
				break
			}
		}
	}
	m.cursor = max(0, min(m.cursor, len(t.Rows)-1))
	return t
}

var (
	bold      = lipgloss.NewStyle().Bold(true)
	headStyle = lipgloss.NewStyle().Reverse(true)
	selStyle  = lipgloss.NewStyle().Reverse(true).Bold(true)
	sortStyle = lipgloss.NewStyle().Reverse(true).Bold(true).Underline(true)
	faint     = lipgloss.NewStyle().Faint(true)
	red       = lipgloss.NewStyle().Foreground(lipgloss.Color("1")).Bold(true)
	yellow    = lipgloss.NewStyle().Foreground(lipgloss.Color("3"))
	tabStyle  = lipgloss.NewStyle().Reverse(true).Bold(true)
)

// View draws the screen.
func (m *Model) View() string {
	var b strings.Builder
	line := func(s string) {
		b.WriteString(s)
		b.WriteString("\n")
	}
	if m.snap == nil {
		line(bold.Render(m.clip("conntrace top: the first figures come in " + m.interval.String())))
		return b.String()
	}
	head := Header(m.snap, m.hooks)
	if m.paused {
		head += "  PAUSED"
	}
	if m.snap.Lost > 0 {
		line(red.Render(m.clip(head)))
	} else {
		line(bold.Render(m.clip(head)))
	}
	var tabs []string
	for i, n := range viewNames {
		if m.view == view(i) && m.view == viewProcs && m.conts {
			n = "containers"
		}
		tab := " " + strconv.Itoa(i+1) + " " + n + " "
		if m.view == view(i) {
			tab = tabStyle.Render(tab)
		}
		tabs = append(tabs, tab)
	}
	status := strings.Join(tabs, " ")
	if m.editing || m.filter != "" {
		status += "   filter: " + safe(m.filter)
		if m.editing {
			status += "_"
		}
	}
	line(status)
	used := 2
	if m.detail {
		line(headStyle.Render(m.clip("events of " + m.dtitle + " (newest last; esc: back)")))
		used++
		for _, l := range m.dlines {
			line(m.clip(strings.TrimSuffix(l, "\n")))
			used++
		}
	} else {
		t := m.table()
		used += m.drawTable(&b, t, m.rowsShown(), true)
		if m.view == viewPorts {
			e := Ephemeral(m.rep)
			e.Filter(m.filter)
			line("")
			used++
			used += m.drawTable(&b, e, max(m.height-used-3, 1), false)
		}
	}
	for ; used < m.height-1; used++ {
		line("")
	}
	b.WriteString(faint.Render(m.clip(Help)))
	return b.String()
}

// drawTable writes t's header and up to n rows around the cursor (when
// selectable), and returns the lines written.
func (m *Model) drawTable(b *strings.Builder, t *Table, n int, selectable bool) int {
	cols, w := t.Cols, t.Widths()
	// The sparkline goes before a last column of text (an explanation),
	// else last.
	title := "LAST MINUTE (" + t.SparkOf + ")"
	at := len(cols)
	if t.Spark {
		if !cols[at-1].Num {
			at--
		}
		cols = slices.Insert(slices.Clone(cols), at, Column{Title: title})
		w = slices.Insert(w, at, width(title))
	}
	sortCol := t.Sort
	if t.Spark && sortCol >= at {
		sortCol++
	}
	lines := 1
	if selectable {
		b.WriteString(m.header(cols, w, sortCol, t.Reverse) + "\n")
	} else {
		// A second table has its title above its columns.
		b.WriteString(bold.Render(m.clip(t.Title)) + "\n")
		b.WriteString(headStyle.Render(m.pad(m.clip(Line(cols, w, titles(cols))))) + "\n")
		lines++
	}
	first := 0
	if selectable && m.cursor >= n {
		first = m.cursor - n + 1
	}
	for i := first; i < len(t.Rows) && i-first < n; i++ {
		r := t.Rows[i]
		cells := texts(r.Cells)
		if t.Spark {
			cells = slices.Insert(cells, at, sparkline(r.Spark, 20))
		}
		l := m.clip(Line(cols, w, cells))
		switch {
		case selectable && i == m.cursor:
			l = selStyle.Render(m.pad(l))
		case r.Level == Crit:
			l = red.Render(l)
		case r.Level == Warn:
			l = yellow.Render(l)
		}
		b.WriteString(l + "\n")
		lines++
	}
	if len(t.Rows) == 0 {
		b.WriteString(faint.Render("  (none yet)") + "\n")
		lines++
	}
	return lines
}

// header draws the column titles with the sort column marked (↓ largest
// first, ↑ reversed).
func (m *Model) header(cols []Column, w []int, sortCol int, reverse bool) string {
	heads := titles(cols)
	if sortCol >= 0 && sortCol < len(heads) {
		mark := "↓"
		if reverse != !cols[sortCol].Num {
			mark = "↑"
		}
		heads[sortCol] += mark
		w = append([]int(nil), w...)
		w[sortCol] = max(w[sortCol], width(heads[sortCol]))
	}
	return headStyle.Render(m.pad(m.clip(Line(cols, w, heads))))
}

// clip cuts s to the screen's width.
func (m *Model) clip(s string) string {
	if width(s) <= m.width {
		return s
	}
	r := []rune(s)
	return string(r[:max(m.width, 0)])
}

func (m *Model) pad(s string) string {
	if n := m.width - width(s); n > 0 {
		return s + strings.Repeat(" ", n)
	}
	return s
}

var sparks = []rune(" ▁▂▃▄▅▆▇█")

// sparkline draws samples in at most n columns, each the largest of the
// samples it covers, scaled to the largest of all.
func sparkline(samples []float64, n int) string {
	if len(samples) == 0 {
		return ""
	}
	per := max(1, (len(samples)+n-1)/n)
	var cols []float64
	for end := len(samples); end > 0; end -= per {
		cols = append(cols, slices.Max(samples[max(0, end-per):end]))
	}
	slices.Reverse(cols)
	top := slices.Max(cols)
	var b strings.Builder
	for _, v := range cols {
		i := 0
		if top > 0 {
			i = int(v / top * float64(len(sparks)-1))
			if v > 0 && i == 0 {
				i = 1
			}
		}
		b.WriteRune(sparks[i])
	}
	return b.String()
}
