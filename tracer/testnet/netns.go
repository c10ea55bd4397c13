// SPDX-License-Identifier: Apache-2.0

// Package testnet gives integration tests real network namespaces, veth
// links and helper processes (servers and clients with their own pid and
// process name) to trace. It uses netlink directly, so it needs no
// iproute2 and works in a bare VM.
package testnet

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NS is a named network namespace (under /run/netns) with lo up.
type NS struct {
	Name string
	h    netns.NsHandle
}

// Path is the namespace's bind mount, for helpers to enter.
func (n *NS) Path() string { return "/run/netns/" + n.Name }

// Inode is the namespace's inode number, as events carry it (NetNS).
func (n *NS) Inode(t testing.TB) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(n.Path(), &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

var nsSeq atomic.Uint32

// NewNS creates a network namespace that is removed when the test ends.
func NewNS(t testing.TB) *NS {
	t.Helper()
	RequireRoot(t)
	name := fmt.Sprintf("ct%d-%d", os.Getpid(), nsSeq.Add(1))

	// Creating a namespace moves the calling thread into it; keep that
	// thread to ourselves and move it back.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("get current netns: %v", err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatalf("return to the original netns: %v", err)
	}
	n := &NS{Name: name, h: h}
	t.Cleanup(func() {
		n.h.Close()
		netns.DeleteNamed(name)
	})

	nl := n.handle(t)
	defer nl.Close()
	lo, err := nl.LinkByName("lo")
	if err != nil {
		t.Fatalf("%s: lo: %v", name, err)
	}
	if err := nl.LinkSetUp(lo); err != nil {
		t.Fatalf("%s: set lo up: %v", name, err)
	}
	return n
}

func (n *NS) handle(t testing.TB) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(n.h, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", n.Name, err)
	}
	return h
}

// Veth joins a and b with a veth pair and gives each end its addresses
// (prefixes such as "198.18.0.1/24" or "2001:db8::1/64"). IPv6 addresses
// skip duplicate address detection so that they are usable at once. It
// returns the names of its two ends, a's and b's.
func Veth(t testing.TB, a *NS, aAddrs []string, b *NS, bAddrs []string) (aName, bName string) {
	t.Helper()
	aName, bName = "veth-"+a.Name, "veth-"+b.Name
	if len(aName) > 15 || len(bName) > 15 {
		aName, bName = fmt.Sprintf("vct%da", nsSeq.Load()), fmt.Sprintf("vct%db", nsSeq.Load())
	}
	// Create the pair inside a, with the peer end put straight into b.
	nla := a.handle(t)
	defer nla.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(b.h),
	}
	if err := nla.LinkAdd(veth); err != nil {
		t.Fatalf("create veth %s/%s: %v", aName, bName, err)
	}
	nlb := b.handle(t)
	defer nlb.Close()
	configure(t, nla, aName, aAddrs)
	configure(t, nlb, bName, bAddrs)
	// Until both ends have carrier, packets are dropped: a SYN sent then is
	// retransmitted a second later and skews every latency.
	waitUp(t, nla, aName)
	waitUp(t, nlb, bName)
	return aName, bName
}

func waitUp(t testing.TB, h *netlink.Handle, ifname string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		link, err := h.LinkByName(ifname)
		if err != nil {
			t.Fatalf("find %s: %v", ifname, err)
		}
		if link.Attrs().OperState == netlink.OperUp {
			return
		}
	}
	t.Fatalf("%s did not come up within 5s", ifname)
}

func configure(t testing.TB, h *netlink.Handle, ifname string, addrs []string) {
	t.Helper()
	link, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatalf("find %s: %v", ifname, err)
	}
	for _, s := range addrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			t.Fatalf("address %q: %v", s, err)
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, addr); err != nil {
			t.Fatalf("add %s to %s: %v", s, ifname, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatalf("set %s up: %v", ifname, err)
	}
}

// Sysctl sets a sysctl of this namespace, e.g. "net/ipv4/tcp_syn_retries".
// /proc/sys/net answers for the network namespace of the calling thread.
func (n *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	n.do(t, func() error { return os.WriteFile("/proc/sys/"+key, []byte(value), 0o644) })
}

// Blackhole drops everything this namespace sends to prefix (e.g. the
// SYN-ACKs to a client, which then times out).
func (n *NS) Blackhole(t testing.TB, prefix string) {
	t.Helper()
	n.route(t, "blackhole", &netlink.Route{Type: unix.RTN_BLACKHOLE}, prefix)
}

// Unreachable makes prefix unreachable from this namespace: what it
// forwards there is answered with ICMP host unreachable (ICMPv6 no
// route).
func (n *NS) Unreachable(t testing.TB, prefix string) {
	t.Helper()
	n.route(t, "unreachable", &netlink.Route{Type: unix.RTN_UNREACHABLE}, prefix)
}

// Via routes prefix through gateway (forwarding in the gateway's
// namespace is the caller's to turn on: Sysctl).
func (n *NS) Via(t testing.TB, prefix, gateway string) {
	t.Helper()
	n.route(t, "via "+gateway, &netlink.Route{Gw: net.IP(netip.MustParseAddr(gateway).AsSlice())}, prefix)
}

func (n *NS) route(t testing.TB, what string, r *netlink.Route, prefix string) {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	h := n.handle(t)
	defer h.Close()
	r.Dst = &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	if err := h.RouteAdd(r); err != nil {
		t.Fatalf("%s: route %s %s: %v", n.Name, prefix, what, err)
	}
}

// do runs fn on a thread inside the namespace.
func (n *NS) do(t testing.TB, fn func() error) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(n.h); err != nil {
		t.Fatalf("enter %s: %v", n.Name, err)
	}
	err = fn()
	if serr := netns.Set(orig); serr != nil {
		t.Fatalf("leave %s: %v", n.Name, serr)
	}
	if err != nil {
		t.Fatalf("in %s: %v", n.Name, err)
	}
}

// SNMP reads a counter of n's /proc/net/snmp: proto "Tcp", name
// "RetransSegs".
func (n *NS) SNMP(t testing.TB, proto, name string) uint64 {
	t.Helper()
	var data []byte
	// thread-self: the namespace of this thread, which do() moved.
	n.do(t, func() (err error) { data, err = os.ReadFile("/proc/thread-self/net/snmp"); return err })
	lines := strings.Split(string(data), "\n")
	for i := 0; i+1 < len(lines); i++ {
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(keys) == 0 || keys[0] != proto+":" || len(vals) != len(keys) || vals[0] != keys[0] {
			continue
		}
		for j, k := range keys {
			if k == name {
				v, err := strconv.ParseUint(vals[j], 10, 64)
				if err != nil {
					t.Fatalf("%s: snmp %s %s: %v", n.Name, proto, name, err)
				}
				return v
			}
		}
	}
	t.Fatalf("%s: no snmp counter %s %s", n.Name, proto, name)
	return 0
}

// Counters lists n's nonzero TCP counters (/proc/net/snmp Tcp, and
// /proc/net/netstat TcpExt), "Name=value" each: what a test shows when
// the kernel did something it did not expect.
func (n *NS) Counters(t testing.TB) string {
	t.Helper()
	var out []string
	for _, f := range []string{"snmp", "netstat"} {
		var data []byte
		n.do(t, func() (err error) { data, err = os.ReadFile("/proc/thread-self/net/" + f); return err })
		lines := strings.Split(string(data), "\n")
		for i := 0; i+1 < len(lines); i += 2 {
			keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
			if len(keys) == 0 || (keys[0] != "Tcp:" && keys[0] != "TcpExt:") || len(vals) != len(keys) {
				continue
			}
			for j := 1; j < len(keys); j++ {
				if vals[j] != "0" {
					out = append(out, keys[j]+"="+vals[j])
				}
			}
		}
	}
	return strings.Join(out, " ")
}

// TxPackets is what n's devices other than loopback sent, as their own
// counters say (/proc/net/dev): one for each skb, so a GSO batch is one.
func (n *NS) TxPackets(t testing.TB) uint64 {
	t.Helper()
	var devs procfs.NetDev
	// thread-self: the namespace of this thread, which do() moved.
	n.do(t, func() error {
		fs, err := procfs.NewFS("/proc/thread-self")
		if err == nil {
			devs, err = fs.NetDev()
		}
		return err
	})
	var total uint64
	for name, dev := range devs {
		if name != "lo" {
			total += dev.TxPackets
		}
	}
	return total
}
