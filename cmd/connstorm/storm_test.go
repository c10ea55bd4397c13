package main

import (
	"testing"
	"time"
)

// TestStorm: a short storm on loopback makes connections, with FIN and
// with RST closes, payload echoed, and none fails.
func TestStorm(t *testing.T) {
	for _, o := range []options{
		{conns: 4, duration: 200 * time.Millisecond, close: "fin", addr: "127.0.0.1:0"},
		{conns: 4, duration: 200 * time.Millisecond, close: "rst", payload: 1000, addr: "[::1]:0"},
	} {
		r, err := storm(o)
		if err != nil {
			t.Fatal(err)
		}
		if r.Conns < 10 || r.Failures != 0 || r.PerSecond <= 0 || r.Port == "0" {
			t.Errorf("%+v: %+v", o, r)
		}
	}
}
