// SPDX-License-Identifier: Apache-2.0

// Package sockets answers "who holds this port": it lists the TCP and UDP
// sockets of a network namespace through sock_diag netlink and finds the
// processes that own them through /proc.
package sockets

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/containers"
)

// Socket is one socket and the processes that have it open.
type Socket struct {
	Proto string // "tcp" or "udp"
	LAddr netip.Addr
	LPort uint16
	RAddr netip.Addr
	RPort uint16
	State string // TCP: "LISTEN", "ESTABLISHED", ...; UDP: "UNCONN" or "ESTAB"
	UID   uint32
	Inode uint32
	Procs []Proc // empty when no process has it (TIME_WAIT, orphaned)
	// ProcsSeen: Procs is the kernel's whole answer (or a walk of /proc
	// that could read every process), so empty Procs means no process
	// has the socket open rather than none that could be seen.
	ProcsSeen bool
	// Expires is the time left on the socket's timer: for TIME_WAIT,
	// until the kernel lets it go.
	Expires time.Duration
	// Queued and Backlog: for LISTEN, the connections waiting in its
	// accept queue and its backlog (sock_diag's rqueue and wqueue); the
	// queue is full, and new SYNs are dropped, past the backlog.
	Queued, Backlog uint32
}

// Proc is a process holding a socket.
type Proc struct {
	PID  uint32
	Comm string // as the process set it: escape before printing
	FD   int    // its (first) descriptor of the socket
	// Container the process runs in, or nil.
	Container *containers.Container
}

// NS is an open network namespace; the zero NS is the caller's own.
type NS struct {
	h netns.NsHandle // 0: none open
}

// ErrNotNetNS: the path given for a network namespace is another file.
var ErrNotNetNS = errors.New("is not a network namespace")

// OpenNS opens the network namespace at path (/run/netns/NAME,
// /proc/PID/ns/net).
func OpenNS(path string) (NS, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return NS{}, fmt.Errorf("network namespace %s: %w", path, err)
	}
	// Any file opens; only a namespace's answers NS_GET_NSTYPE.
	if t, err := unix.IoctlRetInt(int(h), unix.NS_GET_NSTYPE); err != nil || t != unix.CLONE_NEWNET {
		h.Close()
		return NS{}, fmt.Errorf("%s %w (want /run/netns/NAME or /proc/PID/ns/net)", path, ErrNotNetNS)
	}
	return NS{h: h}, nil
}

// Close releases the namespace.
func (n NS) Close() {
	if n.h > 0 {
		n.h.Close()
	}
}

// List returns the sockets of protos ("tcp", "udp") in ns, IPv4 and IPv6,
// with their processes. keep, when not nil, selects sockets before the
// (slower) process lookup.
func List(ns NS, protos []string, keep func(*Socket) bool) ([]Socket, error) {
	return list(ns, protos, keep, true)
}

// ListBare is List without the process lookup, for frequent snapshots.
func ListBare(ns NS, protos []string, keep func(*Socket) bool) ([]Socket, error) {
	return list(ns, protos, keep, false)
}

func list(ns NS, protos []string, keep func(*Socket) bool, procs bool) ([]Socket, error) {
	h, err := handle(ns, unix.NETLINK_INET_DIAG)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var out []Socket
	for _, proto := range protos {
		for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
			var raw []*netlink.Socket
			// A dump that sockets came or went during is marked
			// interrupted and may lack some that were there all
			// along (the holder we look for): dump again.
			for try := 0; try < 5; try++ {
				switch proto {
				case "tcp":
					raw, err = h.SocketDiagTCP(family)
				case "udp":
					raw, err = h.SocketDiagUDP(family)
				default:
					return nil, fmt.Errorf("unknown protocol %q", proto)
				}
				if !errors.Is(err, netlink.ErrDumpInterrupted) {
					break
				}
			}
			if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
				return nil, fmt.Errorf("sock_diag %s: %w", proto, err)
			}
			for _, r := range raw {
				s := convert(proto, r)
				if keep == nil || keep(&s) {
					out = append(out, s)
				}
			}
		}
	}
	if procs {
		if err := attachProcs(out); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return less(&out[i], &out[j]) })
	return out, nil
}

// handle is a netlink handle of protocol family (NETLINK_INET_DIAG,
// NETLINK_ROUTE) that answers for ns.
func handle(ns NS, family int) (*netlink.Handle, error) {
	if ns.h <= 0 {
		return netlink.NewHandle(family)
	}
	return netlink.NewHandleAt(ns.h, family)
}

var tcpStates = [...]string{1: "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
	"TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"}

func convert(proto string, r *netlink.Socket) Socket {
	return Socket{Proto: proto, LPort: r.ID.SourcePort, RPort: r.ID.DestinationPort, UID: r.UID, Inode: r.INode,
		LAddr: addr(r.ID.Source), RAddr: addr(r.ID.Destination), State: stateName(proto, r.State),
		Expires: time.Duration(r.Expires) * time.Millisecond, Queued: r.RQueue, Backlog: r.WQueue}
}

// stateName is a sock_diag state as ss names it.
func stateName(proto string, state uint8) string {
	switch {
	case proto == "udp" && state == unix.BPF_TCP_ESTABLISHED:
		return "ESTAB"
	case proto == "udp":
		return "UNCONN"
	case int(state) < len(tcpStates) && tcpStates[state] != "":
		return tcpStates[state]
	}
	return strconv.Itoa(int(state))
}

func addr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	if a.Is4In6() {
		a = a.Unmap()
	}
	return a
}

// state is where the container runtimes keep their state.
var state = containers.DefaultState()

// attachProcs finds, for each socket, the processes with an fd on it, and
// the container each runs in: in the kernel (OwnerFinder), or else by
// walking /proc.
func attachProcs(socks []Socket) error {
	if len(socks) == 0 {
		return nil
	}
	want := make(map[uint32][]int, len(socks))
	for i := range socks {
		if socks[i].Inode != 0 {
			want[socks[i].Inode] = append(want[socks[i].Inode], i)
		}
	}
	if ownersInKernel(socks, want) {
		return nil
	}
	return walkProcs(socks, want)
}

// WalkProcs finds the processes of socks as a lookup does without an
// OwnerFinder: by a readlink(2) of every /proc/PID/fd/N.
func WalkProcs(socks []Socket) error {
	want := make(map[uint32][]int, len(socks))
	for i := range socks {
		want[socks[i].Inode] = append(want[socks[i].Inode], i)
	}
	return walkProcs(socks, want)
}

// walkProcs is attachProcs by a readlink(2) of every /proc/PID/fd/N.
func walkProcs(socks []Socket, want map[uint32][]int) error {
	procs, err := procfs.AllProcs()
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	unseen := 0
	ctrs := containerCache{}
	for _, p := range procs {
		fds, err := p.FileDescriptors()
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ESRCH) {
				unseen++ // not ours to read
			}
			continue // gone
		}
		var comm string
		var ctr *containers.Container
		seen := map[uint32]bool{}
		for _, fd := range fds {
			// One fd at a time: a descriptor closed since the listing
			// must not hide the process's others.
			t, err := os.Readlink("/proc/" + strconv.Itoa(p.PID) + "/fd/" + strconv.FormatUint(uint64(fd), 10))
			if err != nil {
				continue
			}
			ino, ok := socketInode(t)
			if !ok || seen[ino] {
				continue
			}
			idx, ok := want[ino]
			if !ok {
				continue
			}
			seen[ino] = true
			if comm == "" {
				comm, _ = p.Comm()
				ctr = ctrs.of(uint32(p.PID))
			}
			for _, i := range idx {
				socks[i].Procs = append(socks[i].Procs, Proc{PID: uint32(p.PID), Comm: comm, FD: int(fd), Container: ctr})
			}
		}
	}
	for i := range socks {
		socks[i].ProcsSeen = unseen == 0
	}
	return nil
}

// socketInode parses an fd link target "socket:[12345]".
func socketInode(target string) (uint32, bool) {
	s, ok := strings.CutPrefix(target, "socket:[")
	if !ok || !strings.HasSuffix(s, "]") {
		return 0, false
	}
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
	return uint32(n), err == nil
}

func less(a, b *Socket) bool {
	if a.LPort != b.LPort {
		return a.LPort < b.LPort
	}
	if a.Proto != b.Proto {
		return a.Proto < b.Proto
	}
	if c := a.LAddr.Compare(b.LAddr); c != 0 {
		return c < 0
	}
	if c := a.RAddr.Compare(b.RAddr); c != 0 {
		return c < 0
	}
	return a.RPort < b.RPort
}

// Conflicts reports whether a bind to req would collide with a socket bound
// to have: the same address, or either one a wildcard. An IPv6 wildcard
// covers IPv4 too (a dual-stack socket; IPV6_V6ONLY is not visible here).
func Conflicts(req, have netip.Addr) bool {
	req, have = req.Unmap(), have.Unmap()
	if req.Is4() == have.Is4() {
		return req == have || req.IsUnspecified() || have.IsUnspecified()
	}
	// Different families: only a v6 wildcard reaches across.
	return (req.Is6() && req.IsUnspecified()) || (have.Is6() && have.IsUnspecified())
}

// OpenNSByInode opens the network namespace with inode ino: that of pid
// when pid still lives in it, else that of any process in it. The inode is
// checked on the open file, so a process that exits meanwhile cannot
// mislead it.
func OpenNSByInode(ino, pid uint32) (NS, bool) {
	if ino == 0 {
		return NS{}, false
	}
	try := func(p string) (NS, bool) {
		h, err := netns.GetFromPath(p)
		if err != nil {
			return NS{}, false
		}
		var st unix.Stat_t
		if unix.Fstat(int(h), &st) != nil || st.Ino != uint64(ino) {
			h.Close()
			return NS{}, false
		}
		return NS{h: h}, true
	}
	if pid != 0 {
		// A thread may have entered the namespace alone (setns).
		threads, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/ns/net", pid))
		for _, p := range append([]string{fmt.Sprintf("/proc/%d/ns/net", pid)}, threads...) {
			if ns, ok := try(p); ok {
				return ns, true
			}
		}
	}
	// The process may be gone: any other way into the namespace.
	if path, ok := Namespaces()[ino]; ok {
		return try(path)
	}
	return NS{}, false
}

// EphemeralRange reads net.ipv4.ip_local_port_range as seen in ns (the
// file answers for the network namespace of the reading thread).
func EphemeralRange(ns NS) (lo, hi uint16, err error) {
	err = ns.Do(func() error {
		lo, hi, err = readPortRange()
		return err
	})
	return lo, hi, err
}

func readPortRange() (lo, hi uint16, err error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("ip_local_port_range: %q", b)
	}
	l, err1 := strconv.ParseUint(f[0], 10, 16)
	h, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("ip_local_port_range: %q", b)
	}
	return uint16(l), uint16(h), nil
}

// Do runs fn on a thread inside ns (the caller's own namespace for the
// zero NS). /proc/sys/net answers for the namespace of the calling thread.
func (n NS) Do(fn func() error) error {
	if n.h <= 0 {
		return fn()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(n.h); err != nil {
		return err
	}
	err = fn()
	if serr := netns.Set(orig); serr != nil {
		// This thread is stuck in ns: never let it run other goroutines.
		panic(fmt.Sprintf("cannot return to the original network namespace: %v", serr))
	}
	return err
}

// Namespaces lists the network namespaces that have a process in them or
// a name under /run/netns, by inode, each with a path to open it by.
func Namespaces() map[uint32]string {
	out := map[uint32]string{}
	add := func(path string) {
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil {
			if _, ok := out[uint32(st.Ino)]; !ok {
				out[uint32(st.Ino)] = path
			}
		}
	}
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			add("/run/netns/" + e.Name())
		}
	}
	if entries, err := os.ReadDir("/proc"); err == nil {
		for _, e := range entries {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				add("/proc/" + e.Name() + "/ns/net")
			}
		}
	}
	return out
}
