// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"strings"
	"testing"
)

func TestParseHZ(t *testing.T) {
	if hz := parseConfigHZ(strings.NewReader("# CONFIG_HZ_100 is not set\nCONFIG_HZ_250=y\nCONFIG_HZ=250\n")); hz != 250 {
		t.Errorf("config: HZ %d, want 250", hz)
	}
	if hz := parseConfigHZ(strings.NewReader("CONFIG_X=y\n")); hz != 0 {
		t.Errorf("config without CONFIG_HZ: %d", hz)
	}
	// Real /proc/timer_list excerpts: 21,917 s after boot at HZ 250, and
	// 5 s after boot at HZ 1000 (jiffies still below 2^32).
	for _, tc := range []struct {
		list string
		want uint64
	}{
		{"Timer List Version: v0.10\nnow at 21916755106682 nsecs\n\ncpu: 0\n  .idle_jiffies   : 4300371418\n  .last_jiffies   : 4300371421\n", 250},
		{"now at 5000000000 nsecs\ncpu: 0\n  .last_jiffies   : 4294672296\ncpu: 1\n  .last_jiffies   : 4294672290\n", 1000},
		{"now at 300000000000 nsecs\n  .last_jiffies   : 4294967296\n", 0}, // 300 s: says nothing
		{"now at 21916755106682 nsecs\n", 0},
	} {
		if got := parseTimerListHZ(tc.list); got != tc.want {
			t.Errorf("HZ %d, want %d, from:\n%s", got, tc.want, tc.list)
		}
	}
	if kernelHZ() == 0 {
		t.Error("this kernel's HZ is unknown")
	}
}
