// SPDX-License-Identifier: Apache-2.0

package loadgen

import (
	"testing"
	"time"
)

// TestStorm: a short storm on loopback makes connections, with FIN and
// with RST closes, payload echoed, and none fails.
func TestStorm(t *testing.T) {
	for _, o := range []Options{
		{Conns: 4, Duration: 200 * time.Millisecond, Close: "fin", Addr: "127.0.0.1:0"},
		{Conns: 4, Duration: 200 * time.Millisecond, Close: "rst", Payload: 1000, Addr: "[::1]:0"},
	} {
		r, err := Storm(o)
		if err != nil {
			t.Fatal(err)
		}
		if r.Conns < 10 || r.Accepted == 0 || r.Accepted > r.Conns || r.Failures != 0 || r.PerSecond <= 0 || r.Port == "0" {
			t.Errorf("%+v: %+v", o, r)
		}
	}
}

// TestUDPStorm: each UDP storm makes datagrams, exchanges or flows on
// loopback, IPv4 and IPv6; an exchange answered is one the servers got.
func TestUDPStorm(t *testing.T) {
	for _, mode := range []string{UDPStream, UDPRequestResponse, UDPFlows} {
		for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
			o := UDPOptions{Senders: 2, Duration: 200 * time.Millisecond, Payload: 32, Mode: mode, Addr: addr}
			r, err := UDPStorm(o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Conns < 10 || r.PerSecond <= 0 || r.Port == "0" || mode != UDPStream && r.Accepted < r.Conns {
				t.Errorf("%+v: %+v", o, r)
			}
		}
	}
	if _, err := UDPStorm(UDPOptions{Senders: 1, Duration: time.Millisecond, Mode: "dns", Addr: "127.0.0.1:0"}); err == nil {
		t.Error("an unknown storm ran")
	}
}
