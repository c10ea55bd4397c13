// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"bufio"
	"compress/gzip"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// kernelHZ is the kernel's tick rate (CONFIG_HZ): TCP keeps a
// connection's receive times in ticks, which the programs turn into time
// (bpf/tcp_close.bpf.h). From the kernel's build configuration where the
// distribution ships it, else worked out from /proc/timer_list; 0 when
// neither says.
var kernelHZ = sync.OnceValue(func() uint64 {
	if hz := configHZ(); hz != 0 {
		return hz
	}
	return timerListHZ()
})

// configHZ reads CONFIG_HZ from /boot/config-RELEASE or /proc/config.gz.
func configHZ() uint64 {
	var uts unix.Utsname
	if unix.Uname(&uts) != nil {
		return 0
	}
	var r io.Reader
	if f, err := os.Open("/boot/config-" + unix.ByteSliceToString(uts.Release[:])); err == nil {
		defer f.Close()
		r = f
	} else if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if r, err = gzip.NewReader(f); err != nil {
			return 0
		}
	} else {
		return 0
	}
	return parseConfigHZ(r)
}

func parseConfigHZ(r io.Reader) uint64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CONFIG_HZ="); ok {
			hz, _ := strconv.ParseUint(v, 10, 32)
			return hz
		}
	}
	return 0
}

// timerListHZ works HZ out from /proc/timer_list's clock ("now at N
// nsecs", time since boot) and a CPU's jiffies: the kernel starts its
// jiffies 300 s before 2^32 (INITIAL_JIFFIES), so jiffies - 2^32 =
// HZ * (uptime - 300 s). The answer is the nearest of the rates kernels
// are built with.
func timerListHZ() uint64 {
	data, err := os.ReadFile("/proc/timer_list")
	if err != nil {
		return 0
	}
	return parseTimerListHZ(string(data))
}

func parseTimerListHZ(data string) uint64 {
	var now time.Duration
	var jiffies uint64
	for _, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "now at "); ok && now == 0 {
			ns, _ := strconv.ParseInt(strings.TrimSuffix(v, " nsecs"), 10, 64)
			now = time.Duration(ns)
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == ".last_jiffies" {
			if j, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil && j > jiffies {
				jiffies = j
			}
		}
	}
	since := now.Seconds() - 300
	if now == 0 || jiffies == 0 || math.Abs(since) < 10 {
		return 0
	}
	rate := (float64(jiffies) - (1 << 32)) / since
	best, diff := uint64(0), math.Inf(1)
	for _, hz := range []uint64{100, 250, 300, 1000} {
		if d := math.Abs(rate-float64(hz)) / float64(hz); d < diff {
			best, diff = hz, d
		}
	}
	if diff > 0.05 {
		return 0
	}
	return best
}
