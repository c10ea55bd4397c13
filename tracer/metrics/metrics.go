// SPDX-License-Identifier: Apache-2.0

// Package metrics counts the tracer's events as Prometheus metrics with
// bounded label sets. Metrics is an event.Sink (counting is a map lookup
// and an add under a mutex nobody holds for long) and a
// prometheus.Collector (a scrape copies the counts under the mutex and
// formats them outside it). The names and labels are a contract:
// README.md beside this file lists them.
package metrics

import (
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conntrace/conntrace/tracer/event"
	"github.com/conntrace/conntrace/tracer/output"
)

// DefaultMaxSeries bounds the label sets of one metric.
const DefaultMaxSeries = 2000

// Labels selects the optional labels; a label not selected is not
// exported at all.
type Labels struct {
	Comm, Container, Port bool
}

// AllLabels is the default.
var AllLabels = Labels{Comm: true, Container: true, Port: true}

// BuildLabels are conntrace_build_info's labels from `conntrace version`;
// HookModes is its hooks list, comma-separated.
type BuildLabels struct {
	Version, Commit, BuildDate, GoVersion, Arch, BPFObject, HookModes string
}

// Config sets up a Metrics.
type Config struct {
	// MaxSeries bounds each metric's label sets, overflow included (0:
	// DefaultMaxSeries). Past four fifths of it, a new label set is
	// counted under comm="other", the other labels kept, while there is
	// room; then under port="other" and container="other" as well; and
	// last under the one set kept for it, every label "other".
	// conntrace_series_overflow_total counts the events that overflowed.
	MaxSeries int
	Labels    Labels
	// Ephemeral is the local port range whose ports are labelled
	// port="ephemeral" (a client's port says nothing about the service).
	Ephemeral [2]uint16
	// Build and Hooks (the mode attached) are conntrace_build_info's
	// labels.
	Build BuildLabels
	Hooks string
}

// Label values with a meaning of their own.
const (
	portNone      = -1 // the port label is not used
	portEphemeral = -2
	portOther     = -3
	otherValue    = "other"
)

var otherComm = [16]byte{'o', 't', 'h', 'e', 'r'}

// key is one label set. Labels a metric does not have stay zero.
type key struct {
	dir       event.Direction
	code      uint32 // close: reason; failures: errno
	port      int32  // 0-65535, or portNone, portEphemeral, portOther
	comm      [16]byte
	container string     // the container's name (or short id), "" on the host
	server    netip.Addr // dns: the server asked
	other     bool       // the last overflow: every label "other"
}

type series struct {
	value   uint64   // counters
	buckets []uint64 // histograms: per bucket (not cumulative)
	sum     float64
}

// family is one metric's series.
type family struct {
	desc       *prometheus.Desc
	name       string
	labels     []string // in the order of labelValues
	has        Labels   // the optional ones among them
	bounds     []float64
	series     map[key]*series
	max        int
	overflowed uint64
}

func (f *family) get(k key) *series {
	if s := f.series[k]; s != nil {
		return s
	}
	if len(f.series) >= f.max-max(1, f.max/5) {
		f.overflowed++
		for _, o := range f.overflows(k) {
			if s := f.series[o]; s != nil {
				return s
			}
			if len(f.series) < f.max-1 || o.other {
				k = o
				break
			}
		}
	}
	s := &series{}
	if f.bounds != nil {
		s.buckets = make([]uint64, len(f.bounds)+1)
	}
	f.series[k] = s
	return s
}

// overflows are where a new label set goes once f has its named sets
// (four fifths of max), in turn, while there is room: comm="other"; port
// and container "other" too, which leaves only the fixed labels' values;
// and last every label "other", in the one set always kept free for it,
// so that a family never holds more than max sets. A process or
// container really named "other" shares its series: a name cannot make
// two series with the same labels.
func (f *family) overflows(k key) [3]key {
	var o [3]key
	if f.has.Comm {
		k.comm = otherComm
	}
	o[0] = k
	if f.has.Port {
		k.port = portOther
	}
	if f.has.Container {
		k.container = otherValue
	}
	o[1] = k
	o[2] = key{other: true}
	return o
}

// Metrics counts events. Use New.
type Metrics struct {
	cfg Config

	mu                    sync.Mutex
	connections, closes   *family
	connectFail, bindFail *family
	sent, received        *family
	handshake, duration   *family
	// UDP's flows: started, ended, and what they carried.
	udpFlows, udpEnds           *family
	udpSent, udpReceived        *family
	udpSentDgrams, udpRecvDgram *family
	udpDrops, udpErrors         *family
	dnsLookups, dnsLatency      *family
	lost                        [3]uint64 // dropped, skipped, evicted

	lostDesc, overflowDesc, buildDesc *prometheus.Desc
}

// Histogram buckets, in seconds.
var (
	handshakeBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	durationBuckets  = []float64{.001, .01, .1, 1, 10, 60, 300, 1800, 3600}
)

// New makes the metrics.
func New(cfg Config) *Metrics {
	if cfg.MaxSeries <= 0 {
		cfg.MaxSeries = DefaultMaxSeries
	}
	m := &Metrics{cfg: cfg}
	who := m.labelNames(true, true)
	m.connections = m.family("conntrace_connections_total", "TCP connections established, by the process that made them: direction out (connect) or in (accept).", []string{"direction"}, who, nil)
	m.closes = m.family("conntrace_connection_closes_total", "Established TCP connections that ended, by how: reason fin, reset_in, reset_out, timeout.", []string{"direction", "reason"}, who, nil)
	m.connectFail = m.family("conntrace_connect_failures_total", "Failed connect()s, by error (ECONNREFUSED, ETIMEDOUT, ..., aborted).", []string{"error"}, who, nil)
	m.bindFail = m.family("conntrace_bind_failures_total", "Failed bind()s, by error (EADDRINUSE, EACCES, ...).", []string{"error"}, who, nil)
	m.sent = m.family("conntrace_sent_bytes_total", "Bytes sent on connections that ended.", []string{"direction"}, who, nil)
	m.received = m.family("conntrace_received_bytes_total", "Bytes received on connections that ended.", []string{"direction"}, who, nil)
	m.udpFlows = m.family("conntrace_udp_flows_total", "UDP flows (a socket and a peer) started, by the process that owns the socket: direction out (it sent first) or in (the peer did).", []string{"direction"}, who, nil)
	m.udpEnds = m.family("conntrace_udp_flow_ends_total", "UDP flows that ended, by how: reason closed (the socket) or idle.", []string{"direction", "reason"}, who, nil)
	m.udpSent = m.family("conntrace_udp_sent_bytes_total", "UDP payload bytes sent on flows that ended.", []string{"direction"}, who, nil)
	m.udpReceived = m.family("conntrace_udp_received_bytes_total", "UDP payload bytes received on flows that ended.", []string{"direction"}, who, nil)
	m.udpSentDgrams = m.family("conntrace_udp_sent_datagrams_total", "UDP datagrams sent on flows that ended.", []string{"direction"}, who, nil)
	m.udpRecvDgram = m.family("conntrace_udp_received_datagrams_total", "UDP datagrams received on flows that ended.", []string{"direction"}, who, nil)
	m.udpDrops = m.family("conntrace_udp_dropped_datagrams_total", "UDP datagrams this host dropped before they reached the socket, by the process that owns it and why: drop_reason SOCKET_RCVBUFF (its receive buffer was full) or PROTO_MEM (UDP's memory on the host was used up); with no socket and comm \"\", NO_SOCKET (sent to a port nothing is bound to) or UDP_CSUM (a wrong checksum).", []string{"drop_reason"}, who, nil)
	m.udpErrors = m.family("conntrace_udp_errors_total", "Failures of UDP flows, by error: ICMP errors of connected sockets (ECONNREFUSED: port unreachable; EHOSTUNREACH, ...) and failed sends (EPERM, ENETUNREACH, ...), once per flow and error.", []string{"error"}, who, nil)
	m.dnsLookups = m.family("conntrace_dns_lookups_total", "DNS lookups (a query over UDP and its outcome), by the process that made them, the server asked and rcode: the answer's (NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ...), timeout (none within the DNS timeout) or unanswered (none when the run stopped).", []string{"rcode", "server"}, who, nil)
	portOnly := m.labelNames(false, true)
	m.dnsLatency = m.family("conntrace_dns_latency_seconds", "Time from a DNS query to its answer, by the server asked.", []string{"server"}, portOnly, handshakeBuckets)
	m.handshake = m.family("conntrace_handshake_seconds", "TCP handshake latency of outbound connections: connect() to established.", []string{"direction"}, portOnly, handshakeBuckets)
	m.duration = m.family("conntrace_connection_duration_seconds", "Lifetime of established TCP connections that ended.", []string{"direction"}, portOnly, durationBuckets)
	m.lostDesc = prometheus.NewDesc("conntrace_lost_events_total", "Events the tracer lost, by cause: dropped (the ring buffer was full), skipped (the kernel skipped a hook run), evicted (the socket table, or the UDP flow table, was full).", []string{"cause"}, nil)
	m.overflowDesc = prometheus.NewDesc("conntrace_series_overflow_total", "Events counted under comm=\"other\" because their metric had reached --max-series label sets.", []string{"metric"}, nil)
	m.buildDesc = prometheus.NewDesc("conntrace_build_info", "Always 1: the build of conntrace (as conntrace version says it) and the hooks it attached.",
		[]string{"version", "commit", "build_date", "go_version", "arch", "bpf_object_sha256", "hook_modes", "hooks"}, nil)
	return m
}

// labelNames are the optional labels in use, in the order of labelValues.
func (m *Metrics) labelNames(who, port bool) []string {
	var names []string
	if port && m.cfg.Labels.Port {
		names = append(names, "port")
	}
	if who && m.cfg.Labels.Comm {
		names = append(names, "comm")
	}
	if who && m.cfg.Labels.Container {
		names = append(names, "container")
	}
	return names
}

func (m *Metrics) family(name, help string, fixed, optional []string, bounds []float64) *family {
	labels := append(slices.Clone(fixed), optional...)
	has := Labels{
		Comm:      slices.Contains(optional, "comm"),
		Container: slices.Contains(optional, "container"),
		Port:      slices.Contains(optional, "port"),
	}
	return &family{
		has:    has,
		desc:   prometheus.NewDesc(name, help, labels, nil),
		name:   name,
		labels: labels,
		bounds: bounds,
		series: map[key]*series{},
		max:    m.cfg.MaxSeries,
	}
}

// port is the port label: the service's port, "ephemeral" inside the
// ephemeral range.
func (m *Metrics) port(p uint16) int32 {
	switch {
	case !m.cfg.Labels.Port:
		return portNone
	case p >= m.cfg.Ephemeral[0] && p <= m.cfg.Ephemeral[1] && m.cfg.Ephemeral[1] != 0:
		return portEphemeral
	}
	return int32(p)
}

// who is the label set of ev's process, for the family's fixed labels to
// be added to.
func (m *Metrics) who(ev *event.Event, port uint16) key {
	k := key{port: m.port(port)}
	if m.cfg.Labels.Comm {
		k.comm = ev.Comm
	}
	if m.cfg.Labels.Container && ev.Cgroup != nil && ev.Cgroup.Container != nil {
		k.container = ev.Cgroup.Container.Label()
	}
	return k
}

// servicePort is the service's side of a connection: the peer's port for
// an outbound one, the local port for an inbound one.
func servicePort(ev *event.Event) uint16 {
	if ev.Direction == event.DirIn {
		return ev.LPort
	}
	return ev.RPort
}

// Write counts ev. It is part of event.Sink.
func (m *Metrics) Write(ev *event.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if int(ev.Type) < len(counters) && counters[ev.Type] != nil {
		counters[ev.Type](m, ev)
	}
	return nil
}

// counters says how each kind of event is counted: a row for each type
// in event.All, and lost (TestKindCounters).
var counters = [...]func(m *Metrics, ev *event.Event){
	event.Listen:      func(*Metrics, *event.Event) {}, // a listener is not a connection
	event.Connect:     countConnection,
	event.Accept:      countConnection,
	event.Close:       countClose,
	event.ConnectFail: countConnectFail,
	event.BindFail:    countBindFail,
	event.Drop:        countDrop,
	event.DNS:         countDNS,
	event.Lost:        countLost,
}

func countConnection(m *Metrics, ev *event.Event) {
	k := m.who(ev, servicePort(ev))
	k.dir = ev.Direction
	if ev.Proto == event.ProtoUDP {
		m.udpFlows.get(k).value++
		return
	}
	m.connections.get(k).value++
	if ev.Type == event.Connect {
		observe(m.handshake.get(key{dir: ev.Direction, port: k.port}), m.handshake.bounds, ev.Latency)
	}
}

func countClose(m *Metrics, ev *event.Event) {
	k := m.who(ev, servicePort(ev))
	k.dir = ev.Direction
	if ev.Proto == event.ProtoUDP {
		m.udpSent.get(k).value += ev.TxBytes
		m.udpReceived.get(k).value += ev.RxBytes
		m.udpSentDgrams.get(k).value += ev.TxPackets
		m.udpRecvDgram.get(k).value += ev.RxPackets
		k.code = uint32(ev.Reason)
		m.udpEnds.get(k).value++
		return
	}
	m.sent.get(k).value += ev.TxBytes
	m.received.get(k).value += ev.RxBytes
	observe(m.duration.get(key{dir: ev.Direction, port: k.port}), m.duration.bounds, ev.Duration)
	k.code = uint32(ev.Reason)
	m.closes.get(k).value++
}

func countConnectFail(m *Metrics, ev *event.Event) {
	k := m.who(ev, ev.RPort)
	k.code = ev.Errno
	if ev.Proto == event.ProtoUDP {
		m.udpErrors.get(k).value++
		return
	}
	m.connectFail.get(k).value++
}

func countBindFail(m *Metrics, ev *event.Event) {
	k := m.who(ev, ev.LPort)
	k.code = ev.Errno
	m.bindFail.get(k).value++
}

// dropReasons are the values of the label drop_reason, by key.code.
var dropReasons = [...]string{"other", "SOCKET_RCVBUFF", "PROTO_MEM", "NO_SOCKET", "UDP_CSUM"}

func countDrop(m *Metrics, ev *event.Event) {
	k := m.who(ev, ev.LPort)
	k.code = uint32(max(0, slices.Index(dropReasons[:], ev.DropReason)))
	m.udpDrops.get(k).value += uint64(ev.Drops)
}

// rcode values past the 16 bits of a response code.
const (
	rcodeTimeout     = 1 << 16
	rcodeUnanswered  = 1<<16 + 1
	rcodeUnreachable = 1<<16 + 2
)

func countDNS(m *Metrics, ev *event.Event) {
	l := ev.DNS
	if l == nil {
		return
	}
	k := m.who(ev, ev.RPort)
	k.server = ev.RAddr
	switch l.Outcome {
	case event.TimedOut:
		k.code = rcodeTimeout
	case event.Unanswered:
		k.code = rcodeUnanswered
	case event.Unreachable:
		k.code = rcodeUnreachable
	default:
		k.code = uint32(l.RCode)
	}
	m.dnsLookups.get(k).value++
	if l.Outcome == event.Answered && l.Latency > 0 {
		observe(m.dnsLatency.get(key{port: m.port(ev.RPort), server: ev.RAddr}), m.dnsLatency.bounds, l.Latency)
	}
}

func countLost(m *Metrics, ev *event.Event) {
	m.lost[0] += ev.LostDropped
	m.lost[1] += ev.LostSkipped
	m.lost[2] += ev.LostEvicted
}

// Flush is part of event.Sink.
func (m *Metrics) Flush() error { return nil }

func observe(s *series, bounds []float64, d time.Duration) {
	v := d.Seconds()
	i, _ := slices.BinarySearch(bounds, v) // le: the first bound >= v
	s.buckets[i]++
	s.sum += v
	s.value++
}

// Describe is part of prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range m.families() {
		ch <- f.desc
	}
	ch <- m.lostDesc
	ch <- m.overflowDesc
	ch <- m.buildDesc
}

func (m *Metrics) families() []*family {
	return []*family{m.connections, m.closes, m.connectFail, m.bindFail, m.sent, m.received, m.handshake, m.duration,
		m.udpFlows, m.udpEnds, m.udpSent, m.udpReceived, m.udpSentDgrams, m.udpRecvDgram, m.udpDrops, m.udpErrors,
		m.dnsLookups, m.dnsLatency}
}

// snapshot is one family's series, copied.
type snapshot struct {
	f      *family
	keys   []key
	series []series
	overfl uint64
}

// Collect is part of prometheus.Collector. The counts are copied under
// the mutex, formatted outside it.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	fams := m.families()
	snaps := make([]snapshot, len(fams))
	m.mu.Lock()
	for i, f := range fams {
		s := snapshot{f: f, keys: make([]key, 0, len(f.series)), series: make([]series, 0, len(f.series)), overfl: f.overflowed}
		for k, v := range f.series {
			c := *v
			c.buckets = slices.Clone(v.buckets)
			s.keys = append(s.keys, k)
			s.series = append(s.series, c)
		}
		snaps[i] = s
	}
	lost := m.lost
	m.mu.Unlock()

	for _, s := range snaps {
		for i, k := range s.keys {
			ch <- s.f.metric(k, &s.series[i], m.labelValues(s.f, k))
		}
		ch <- prometheus.MustNewConstMetric(m.overflowDesc, prometheus.CounterValue, float64(s.overfl), s.f.name)
	}
	for i, cause := range []string{"dropped", "skipped", "evicted"} {
		ch <- prometheus.MustNewConstMetric(m.lostDesc, prometheus.CounterValue, float64(lost[i]), cause)
	}
	b := m.cfg.Build
	ch <- prometheus.MustNewConstMetric(m.buildDesc, prometheus.GaugeValue, 1,
		b.Version, b.Commit, b.BuildDate, b.GoVersion, b.Arch, b.BPFObject, b.HookModes, m.cfg.Hooks)
}

func (f *family) metric(k key, s *series, values []string) prometheus.Metric {
	if f.bounds == nil {
		return prometheus.MustNewConstMetric(f.desc, prometheus.CounterValue, float64(s.value), values...)
	}
	cum := make(map[float64]uint64, len(f.bounds))
	var n uint64
	for i, b := range f.bounds {
		n += s.buckets[i]
		cum[b] = n
	}
	return prometheus.MustNewConstHistogram(f.desc, s.value, s.sum, cum, values...)
}

// labelValues are k's values for f's labels, in f's order.
func (m *Metrics) labelValues(f *family, k key) []string {
	values := make([]string, 0, len(f.labels))
	for _, l := range f.labels {
		var v string
		switch {
		case k.other:
			v = otherValue
		case l == "direction":
			v = k.dir.String()
		case l == "reason":
			v = event.Reason(k.code).String()
		case l == "drop_reason":
			v = dropReasons[k.code%uint32(len(dropReasons))]
		case l == "rcode":
			v = rcodeName(k.code)
		case l == "server":
			v = k.server.String()
		case l == "error":
			v = (&event.Event{Errno: k.code}).ErrorName()
		case l == "port":
			switch k.port {
			case portEphemeral:
				v = "ephemeral"
			case portOther:
				v = otherValue
			default:
				v = strconv.Itoa(int(k.port))
			}
		case l == "comm":
			v = string(output.AppendTextSafe(nil, (&event.Event{Comm: k.comm}).CommBytes()))
		case l == "container":
			v = string(output.AppendTextSafe(nil, k.container))
		}
		values = append(values, v)
	}
	return values
}

func rcodeName(code uint32) string {
	l := event.Lookup{RCode: uint16(code)}
	switch code {
	case rcodeTimeout:
		l.Outcome = event.TimedOut
	case rcodeUnanswered:
		l.Outcome = event.Unanswered
	case rcodeUnreachable:
		l.Outcome = event.Unreachable
	}
	return l.RCodeName()
}
