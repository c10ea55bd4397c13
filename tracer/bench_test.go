package tracer_test

import (
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/output"
)

// The user-space cost per event: a ring-buffer record decoded in place and
// formatted into a reused buffer, as Tracer.Run and output.Writer do.
// Run with: go test -run '^$' -bench Record -benchmem ./tracer

func benchRecord(b *testing.B, format func([]byte, *tracer.Event) []byte) {
	raw := tracer.CloseRecordForTest()
	clk := tracer.ClockWithOffset(time.Second)
	var ev tracer.Event
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := tracer.DecodeForTest(raw, clk, &ev); err != nil {
			b.Fatal(err)
		}
		buf = format(buf[:0], &ev)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkRecordToJSON(b *testing.B) { benchRecord(b, output.AppendJSON) }

func BenchmarkRecordToText(b *testing.B) { benchRecord(b, output.AppendText) }

func BenchmarkRecordDecode(b *testing.B) {
	benchRecord(b, func(buf []byte, _ *tracer.Event) []byte { return buf })
}
