// SPDX-License-Identifier: Apache-2.0

package main

import "testing"

// TestCrashLine: the console lines of a guest kernel's crash, as 6.12
// printed them, end a run as a crash; the tests' own lines do not.
func TestCrashLine(t *testing.T) {
	for line, want := range map[string]guestCrash{
		"[  226.005203] traps: PANIC: double fault, error_code: 0x0":          "PANIC: double fault, error_code: 0x0",
		"[  226.009699] Oops: double fault: 0000 [#1] PREEMPT SMP NOPTI":      "Oops: double fault: 0000 [#1] PREEMPT SMP NOPTI",
		"[   88.1] Kernel panic - not syncing: Fatal exception":               "Kernel panic - not syncing: Fatal exception",
		"[   22.4] BUG: soft lockup - CPU#1 stuck for 26s! [tracer.test:101]": "BUG: soft lockup - CPU#1 stuck for 26s! [tracer.test:101]",
		"panic: runtime error: index out of range [3] with length 3":          "",
		"--- FAIL: TestOops (0.01s)":                                          "",
		"    lifecycle_test.go:80: BUG: want 3 events":                        "",
	} {
		if got := crashLine(line); got != want {
			t.Errorf("crashLine(%q) = %q, want %q", line, got, want)
		}
	}
}
