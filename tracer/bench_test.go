// SPDX-License-Identifier: Apache-2.0

package tracer_test

import (
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/containers"
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

// A container's process: its cgroup and container resolved (from the
// cache, as for all but a cgroup's first event).
func BenchmarkRecordToJSONContainer(b *testing.B) {
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cg := &containers.Cgroup{ID: 4711, Path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_5f60.slice/cri-containerd-" + id + ".scope",
		Container: &containers.Container{ID: id, Runtime: containers.Containerd, Name: "api", Image: "registry.example/api:v2", Pod: "api-7d4b9c-xk2lp", Namespace: "shop"}}
	benchRecord(b, func(buf []byte, ev *tracer.Event) []byte {
		ev.CgroupID, ev.Cgroup = cg.ID, cg
		return output.AppendJSON(buf, ev)
	})
}

func BenchmarkRecordToText(b *testing.B) { benchRecord(b, output.AppendText) }

func BenchmarkRecordDecode(b *testing.B) {
	benchRecord(b, func(buf []byte, _ *tracer.Event) []byte { return buf })
}
