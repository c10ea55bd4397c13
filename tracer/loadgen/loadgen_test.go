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
