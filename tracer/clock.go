// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"time"

	"golang.org/x/sys/unix"
)

// Clock converts the kernel's CLOCK_MONOTONIC timestamps (bpf_ktime_get_ns)
// to wall-clock time. The offset is measured once; a wall-clock step after
// that (NTP, settimeofday) is not followed, which keeps event times ordered.
type Clock struct {
	offset int64 // realtime - monotonic, in ns
}

// NewClock measures the offset, taking the tightest of a few readings.
func NewClock() Clock {
	best := int64(-1)
	var off int64
	for i := 0; i < 5; i++ {
		a := monotonicNow()
		now := time.Now().UnixNano()
		b := monotonicNow()
		if span := b - a; best < 0 || span < best {
			best = span
			off = now - (a+b)/2
		}
	}
	return Clock{offset: off}
}

// ClockWithOffset is for tests: wall = mono + offset.
func ClockWithOffset(offset time.Duration) Clock { return Clock{offset: int64(offset)} }

// Wall returns the wall-clock time of a monotonic timestamp, in UTC.
func (c Clock) Wall(monoNs uint64) time.Time {
	return time.Unix(0, int64(monoNs)+c.offset).UTC()
}

func monotonicNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// Mono is the kernel's clock now, as records have it (CLOCK_MONOTONIC ns).
func (c Clock) Mono() uint64 { return uint64(monotonicNow()) }
