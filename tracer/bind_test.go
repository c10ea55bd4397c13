package tracer_test

import (
	"net/netip"
	"testing"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// bindAs starts a helper that binds addr and reports "bound" or the error.
func bindAs(t *testing.T, comm string, role testnet.Role) (*testnet.Proc, string) {
	t.Helper()
	role.Bind = true
	p := testnet.Start(t, comm, role)
	line := p.Line(t)
	return p, line
}

// TestBindFailures: a process holds a port, another fails to bind it; the
// event names the failing process and lists the holder, looked up in the
// failing process's own network namespace.
func TestBindFailures(t *testing.T) {
	testnet.RequireRoot(t)
	cases := []struct {
		name      string
		hold      string // "" for none
		udp       bool
		request   string
		uid       int
		errName   string
		family    tracer.Family
		holderAt  string // the holder's address as reported
		holderSta string
	}{
		{"wildcard-holds-specific", "0.0.0.0:8080", false, "127.0.0.1:8080", 0, "EADDRINUSE", tracer.FamilyIPv4, "0.0.0.0", "LISTEN"},
		{"specific-holds-wildcard", "127.0.0.1:8081", false, "0.0.0.0:8081", 0, "EADDRINUSE", tracer.FamilyIPv4, "127.0.0.1", "LISTEN"},
		{"v6-wildcard-holds-v4", "[::]:8082", false, "127.0.0.1:8082", 0, "EADDRINUSE", tracer.FamilyIPv4, "::", "LISTEN"},
		{"ipv6", "[::1]:8083", false, "[::1]:8083", 0, "EADDRINUSE", tracer.FamilyIPv6, "::1", "LISTEN"},
		{"udp", "0.0.0.0:5353", true, "0.0.0.0:5353", 0, "EADDRINUSE", tracer.FamilyIPv4, "0.0.0.0", "UNCONN"},
		{"privileged-port", "", false, "0.0.0.0:80", 65534, "EACCES", tracer.FamilyIPv4, "", ""},
		{"address-not-here", "", false, "192.0.2.1:8090", 0, "EADDRNOTAVAIL", tracer.FamilyIPv4, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := testnet.NewNS(t)
			req := netip.MustParseAddrPort(tc.request)
			s := startTracer(t, tracer.Config{Ports: []uint16{req.Port()}, Events: tracer.Failures})

			var holder *testnet.Proc
			if tc.hold != "" {
				var got string
				holder, got = bindAs(t, "ct-holder", testnet.Role{NS: ns.Path(), Addr: tc.hold, UDP: tc.udp, Listen: !tc.udp})
				if got != "bound" {
					t.Fatalf("holder: %s", got)
				}
			}
			failer, got := bindAs(t, "ct-binder", testnet.Role{NS: ns.Path(), Addr: tc.request, UDP: tc.udp, UID: tc.uid})
			if got != "failed "+tc.errName {
				t.Fatalf("binder: %q, want failed %s", got, tc.errName)
			}
			failer.Wait(t)
			ev := oneFailure(t, s)
			if holder != nil {
				holder.Go(t)
				holder.Wait(t)
			}

			if ev.Type != tracer.EventBindFail || ev.ErrorName() != tc.errName {
				t.Fatalf("want bind_fail %s, got %s %s", tc.errName, ev.Type, ev.ErrorName())
			}
			if int(ev.PID) != failer.PID || string(ev.CommBytes()) != "ct-binder" || int(ev.UID) != tc.uid {
				t.Errorf("attributed to %d %q uid %d, want %d ct-binder uid %d", ev.PID, ev.CommBytes(), ev.UID, failer.PID, tc.uid)
			}
			wantProto := tracer.ProtoTCP
			if tc.udp {
				wantProto = tracer.ProtoUDP
			}
			if ev.LAddr != req.Addr().Unmap() || ev.LPort != req.Port() || ev.Family != tc.family || ev.Proto != wantProto {
				t.Errorf("requested %v:%d %s %s, want %v %s %s", ev.LAddr, ev.LPort, ev.Family, ev.Proto, req, tc.family, wantProto)
			}
			if holder == nil {
				if ev.Holders == nil || len(ev.Holders) != 0 {
					t.Errorf("holders %+v, want an empty list", ev.Holders)
				}
				return
			}
			want := tracer.Holder{PID: uint32(holder.PID), Comm: "ct-holder", LAddr: netip.MustParseAddr(tc.holderAt),
				LPort: req.Port(), State: tc.holderSta}
			if len(ev.Holders) != 1 || ev.Holders[0] != want {
				t.Errorf("holders %+v, want [%+v]", ev.Holders, want)
			}
		})
	}
}

// TestBindHolderInOwnNamespace: the same port is held in the host's
// namespace and in the failing process's; only the latter is the holder.
func TestBindHolderInOwnNamespace(t *testing.T) {
	ns := testnet.NewNS(t)
	s := startTracer(t, tracer.Config{Ports: []uint16{18080}, Events: tracer.Failures})
	hostHolder, got := bindAs(t, "ct-host", testnet.Role{Addr: "0.0.0.0:18080", Listen: true})
	if got != "bound" {
		t.Fatalf("host holder: %s", got)
	}
	defer hostHolder.Go(t)
	nsHolder, got := bindAs(t, "ct-holder", testnet.Role{NS: ns.Path(), Addr: "0.0.0.0:18080", Listen: true})
	if got != "bound" {
		t.Fatalf("holder: %s", got)
	}
	defer nsHolder.Go(t)
	failer, got := bindAs(t, "ct-binder", testnet.Role{NS: ns.Path(), Addr: "0.0.0.0:18080"})
	if got != "failed EADDRINUSE" {
		t.Fatalf("binder: %s", got)
	}
	failer.Wait(t)
	ev := oneFailure(t, s)
	if len(ev.Holders) != 1 || int(ev.Holders[0].PID) != nsHolder.PID {
		t.Errorf("holders %+v, want only pid %d (not the host's %d)", ev.Holders, nsHolder.PID, hostHolder.PID)
	}
}
