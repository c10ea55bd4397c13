// SPDX-License-Identifier: Apache-2.0

package top

import (
	"math/bits"
	"time"
)

// A latency histogram in microseconds: exact below 4 µs, then four buckets
// per power of two (a value is reported as its bucket's middle: within
// 12.5%), up to 2^27 µs (134 s; longer values count in the last bucket).
const (
	histSub     = 4
	histOctaves = 26 // 2^2 .. 2^27 µs
	histBuckets = histSub + histOctaves*histSub
)

type hist [histBuckets]uint32

func histIndex(d time.Duration) int {
	us := uint64(d / time.Microsecond)
	if us < histSub {
		return int(us)
	}
	e := bits.Len64(us) - 1 // 2^e <= us < 2^(e+1), e >= 2
	i := histSub + (e-2)*histSub + int(us>>(e-2))&(histSub-1)
	return min(i, histBuckets-1)
}

// histMiddle is the middle of bucket i, in microseconds.
func histMiddle(i int) float64 {
	if i < histSub {
		return float64(i)
	}
	e := (i-histSub)/histSub + 2
	lo := uint64(histSub+(i-histSub)%histSub) << (e - 2)
	return float64(lo) + float64(uint64(1)<<(e-2))/2
}

// windowed keeps two histograms, each of one window: the percentiles are
// of the last one to two windows, not of the whole run.
type windowed struct {
	cur, prev *hist
	n         uint64 // samples in cur and prev
	curN      uint64
	started   time.Time // cur's start
}

// latencyWindow is how long one window lasts: percentiles cover the last
// 30 to 60 seconds.
const latencyWindow = 30 * time.Second

func (w *windowed) add(d time.Duration, now time.Time) {
	if w.cur == nil {
		w.cur, w.started = new(hist), now
	}
	w.cur[histIndex(d)]++
	w.n++
	w.curN++
}

// roll starts a new window when the current one is over.
func (w *windowed) roll(now time.Time) {
	if w.cur == nil || now.Sub(w.started) < latencyWindow {
		return
	}
	prevN := w.n - w.curN
	if w.prev == nil {
		w.prev = new(hist)
	}
	w.cur, w.prev = w.prev, w.cur
	*w.cur = hist{}
	w.n -= prevN
	w.curN = 0
	w.started = now
}

// quantile is the q-th quantile (0 < q <= 1) in microseconds, or nil
// with no sample.
func (w *windowed) quantile(q float64) *float64 {
	if w.n == 0 {
		return nil
	}
	rank := uint64(q*float64(w.n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i := range histBuckets {
		seen += uint64(w.cur[i])
		if w.prev != nil {
			seen += uint64(w.prev[i])
		}
		if seen >= rank {
			v := histMiddle(i)
			return &v
		}
	}
	v := histMiddle(histBuckets - 1)
	return &v
}

// rates is a ring of the last rates of a row, one per Tick: its sparkline.
type rates struct {
	ring []float64
	next int
}

// push adds the latest rate, keeping at most n.
func (r *rates) push(v float64, n int) {
	if len(r.ring) < n {
		r.ring = append(r.ring, 0)
	}
	r.ring[r.next] = v
	r.next = (r.next + 1) % n
}

// oldestFirst is a copy of the ring in time order.
func (r *rates) oldestFirst() []float64 {
	out := make([]float64, 0, len(r.ring))
	if r.next < len(r.ring) {
		out = append(out, r.ring[r.next:]...)
	}
	return append(out, r.ring[:r.next]...)
}
