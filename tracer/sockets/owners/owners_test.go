// SPDX-License-Identifier: Apache-2.0

package owners

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/internal/bpfobj"
	"github.com/conntrace/conntrace/tracer/sockets"
	"github.com/conntrace/conntrace/tracer/testnet"
)

func TestMain(m *testing.M) {
	testnet.RunHelper()
	os.Exit(m.Run())
}

// TestOwnersMapSize: wantedMax is the map's size.
func TestOwnersMapSize(t *testing.T) {
	spec, err := bpfobj.LoadOwners()
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Maps["wanted_inodes"].MaxEntries; got != wantedMax {
		t.Errorf("wanted_inodes holds %d, wantedMax is %d", got, wantedMax)
	}
}

// TestOwnersManyFiles: on a host whose processes hold many descriptors,
// the iterator names a port's holders, the same ones as a walk of /proc,
// forked workers sharing the socket included, and faster.
func TestOwnersManyFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("loads BPF: not with -short")
	}
	testnet.RequireRoot(t)
	if err := Prepare(); err != nil {
		t.Fatal(err)
	}
	// The iterator's cost in the kernel (bpf_stats: run_time_ns/run_cnt),
	// one run per open file of the host.
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	const procs, files = 6, 16000
	for i := range procs {
		p := testnet.Start(t, "ct-files"+strconv.Itoa(i), testnet.Role{Files: files})
		p.ExpectWithin(t, "opened", time.Minute)
		defer p.Go(t)
	}
	const port = 18571
	holder := testnet.Start(t, "ct-holder", testnet.Role{Bind: true, Listen: true, Addr: "127.0.0.1:" + strconv.Itoa(port), Share: 2})
	holder.Expect(t, "shared")
	holder.Expect(t, "bound")
	defer holder.Go(t)

	start := time.Now()
	socks, err := sockets.OnPort(sockets.NS{}, "tcp", port)
	inKernel := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 1 || !socks[0].ProcsSeen || len(socks[0].Procs) != 3 || socks[0].Procs[0].PID != uint32(holder.PID) ||
		socks[0].Procs[0].Comm != "ct-holder" || socks[0].Procs[0].FD < 3 {
		t.Fatalf("port %d: %+v, want one socket held by %d ct-holder and its 2 workers", port, socks, holder.PID)
	}
	walked := append([]sockets.Socket(nil), socks...)
	walked[0].Procs, walked[0].ProcsSeen = nil, false
	start = time.Now()
	if err := sockets.WalkProcs(walked); err != nil {
		t.Fatal(err)
	}
	walk := time.Since(start)
	if len(walked[0].Procs) != len(socks[0].Procs) {
		t.Fatalf("the walk of /proc found %+v, the iterator %+v", walked[0].Procs, socks[0].Procs)
	}
	for i, p := range walked[0].Procs {
		if k := socks[0].Procs[i]; p.PID != k.PID || p.Comm != k.Comm || p.FD != k.FD {
			t.Errorf("process %d: the walk of /proc found %+v, the iterator %+v", i, p, k)
		}
	}
	st, err := owners.objs.SocketOwners.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d processes with %d files each: holders in %v in the kernel (sock_diag included), %v walking /proc; "+
		"the iterator's program ran %d times, %d ns a run", procs, files, inKernel, walk, st.RunCount, st.Runtime.Nanoseconds()/int64(max(1, st.RunCount)))
	if inKernel > walk {
		t.Errorf("the iterator (%v) was slower than the walk of /proc (%v)", inKernel, walk)
	}
}
