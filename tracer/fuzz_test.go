// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/output"
)

// FuzzDecodeAndFormat: any bytes the ring buffer could hold either fail to
// decode or become one valid JSON object and one safe text line. The
// addresses a record carries (from the kernel's sockaddr and socket reads)
// are decoded here too.
func FuzzDecodeAndFormat(f *testing.F) {
	for _, r := range tracer.SeedRecordsForTest() {
		f.Add(r)
	}
	clk := tracer.ClockWithOffset(0)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ev tracer.Event
		if err := tracer.DecodeForTest(raw, clk, &ev); err != nil {
			return
		}
		line := output.AppendJSON(nil, &ev)
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("JSON is not one line: %q", line)
		}
		var m map[string]any
		if !utf8.Valid(line) || json.Unmarshal(line, &m) != nil {
			t.Fatalf("not valid JSON: %q", line)
		}
		if m["event"] != ev.Type.String() || m["comm"] != string([]rune(string(ev.CommBytes()))) {
			t.Fatalf("JSON %q does not round-trip event %s comm %q", line, ev.Type, ev.CommBytes())
		}
		text := output.AppendText(nil, &ev)
		if bytes.IndexByte(text, '\n') != len(text)-1 {
			t.Fatalf("text is not one line: %q", text)
		}
		for _, c := range text[:len(text)-1] {
			if c < ' ' || c >= 0x7f {
				t.Fatalf("raw byte %#x in text %q", c, text)
			}
		}
	})
}
