package tracer

import (
	"os"
	"testing"
)

// HooksUnderTest is the hook mode the integration tests open the tracer
// with: $CONNTRACE_TEST_HOOKS (vmtest runs the suite once per mode), or
// auto.
func HooksUnderTest(tb testing.TB) Hooks {
	s := os.Getenv("CONNTRACE_TEST_HOOKS")
	if s == "" {
		return HooksAuto
	}
	h, err := ParseHooks(s)
	if err != nil {
		tb.Fatalf("CONNTRACE_TEST_HOOKS: %v", err)
	}
	return h
}
