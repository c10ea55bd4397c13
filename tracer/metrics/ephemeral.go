// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conntrace/conntrace/tracer/audit"
)

// Ephemeral exports the ephemeral ports each destination holds, from the
// same sock_diag snapshots as `conntrace audit`: every network namespace,
// TIME_WAIT included. A scrape takes a snapshot unless the last one is
// younger than MinInterval.
type Ephemeral struct {
	// MaxSeries bounds the destinations exported (the fullest first).
	MaxSeries int
	// MinInterval is the youngest snapshot a scrape reuses.
	MinInterval time.Duration
	// Ports keeps only destinations with these ports (none: all).
	Ports []uint16

	mu   sync.Mutex
	last time.Time
	rep  *audit.Report
}

var (
	inUseDesc = prometheus.NewDesc("conntrace_ephemeral_ports_in_use",
		"Local ports held towards a destination (address:port) now, TIME_WAIT included, in a network namespace (its inode); of several source addresses, the one holding the most.",
		[]string{"netns", "destination"}, nil)
	usableDesc = prometheus.NewDesc("conntrace_ephemeral_ports_usable",
		"Usable ephemeral ports of a network namespace: ip_local_port_range less ip_local_reserved_ports, the most connections one source address can hold to one destination.",
		[]string{"netns"}, nil)
)

// Describe is part of prometheus.Collector.
func (e *Ephemeral) Describe(ch chan<- *prometheus.Desc) {
	ch <- inUseDesc
	ch <- usableDesc
}

// report takes a snapshot if the last is too old.
func (e *Ephemeral) report() *audit.Report {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rep == nil || time.Since(e.last) >= e.MinInterval {
		// A new audit each time: one kept for the process's life would
		// remember every destination and namespace it ever saw.
		aud := audit.New(audit.Config{Ports: e.Ports})
		aud.Snapshot(false)
		e.rep = aud.Report(false)
		e.last = time.Now()
	}
	return e.rep
}

// Collect is part of prometheus.Collector.
func (e *Ephemeral) Collect(ch chan<- prometheus.Metric) {
	r := e.report()
	type dest struct {
		netns uint32
		addr  netip.AddrPort
	}
	inUse := map[dest]int{}
	for _, d := range r.Destinations {
		if d.InUse == 0 {
			continue
		}
		addr, err := netip.ParseAddr(d.DAddr)
		if err != nil {
			continue
		}
		k := dest{d.NetNS, netip.AddrPortFrom(addr, d.DPort)}
		inUse[k] = max(inUse[k], d.InUse)
	}
	keys := make([]dest, 0, len(inUse))
	for k := range inUse {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b dest) int {
		return cmp.Or(cmp.Compare(inUse[b], inUse[a]), cmp.Compare(a.netns, b.netns), a.addr.Compare(b.addr))
	})
	if n := cmp.Or(e.MaxSeries, DefaultMaxSeries); len(keys) > n {
		keys = keys[:n]
	}
	for _, k := range keys {
		ch <- prometheus.MustNewConstMetric(inUseDesc, prometheus.GaugeValue, float64(inUse[k]), strconv.FormatUint(uint64(k.netns), 10), k.addr.String())
	}
	for _, l := range r.Limits {
		ch <- prometheus.MustNewConstMetric(usableDesc, prometheus.GaugeValue, float64(l.Usable), strconv.FormatUint(uint64(l.NetNS), 10))
	}
}
