// SPDX-License-Identifier: Apache-2.0

package output

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// TestRFC3339Nano: the hand-made timestamp is time.Format's, byte for
// byte, over random instants from 1970 to 9999 and the edges.
func TestRFC3339Nano(t *testing.T) {
	times := []time.Time{time.Unix(0, 0), time.Unix(951782400, 0) /* 2000-02-29 */, time.Unix(253402300799, 999999999),
		time.Unix(-1, 0), time.Unix(253402300800, 0), time.Date(2026, 12, 31, 23, 59, 59, 1, time.FixedZone("x", 3600))}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		times = append(times, time.Unix(r.Int64N(253402300800), r.Int64N(1e9)))
	}
	for _, tm := range times {
		got, want := appendRFC3339Nano(nil, tm), tm.UTC().AppendFormat(nil, JSONTimeLayout)
		if string(got) != string(want) {
			t.Fatalf("%v: got %s, want %s", tm.Unix(), got, want)
		}
	}
}

// TestLocalClock: the text lines' time of day is time.Format's, in a
// zone with an offset and daylight saving.
func TestLocalClock(t *testing.T) {
	zone, err := time.LoadLocation("America/New_York")
	if err != nil {
		zone = time.FixedZone("UTC-5", -5*3600)
	}
	saved := time.Local
	time.Local = zone
	defer func() { time.Local = saved }()
	r := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		tm := time.Unix(r.Int64N(4102444800), r.Int64N(1e9))
		if got, want := string(appendLocalClock(nil, tm)), tm.Local().Format("15:04:05.000000"); got != want {
			t.Fatalf("%v: got %s, want %s", tm.Unix(), got, want)
		}
	}
}

// TestMillis: three decimals rounded to the microsecond, half away from
// zero; the same as strconv's float formatting wherever that has no tie.
func TestMillis(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{{0, "0.000"}, {499, "0.000"}, {500, "0.001"}, {1500, "0.002"}, {2766123456, "2766.123"}, {999999500, "1000.000"}, {-1500000, "-1.500"}} {
		if got := string(appendMillis(nil, c.d)); got != c.want {
			t.Errorf("%d ns: got %s, want %s", c.d, got, c.want)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		d := time.Duration(r.Int64N(1 << 42))
		if d%1000 == 500 {
			continue
		}
		if got, want := string(appendMillis(nil, d)), strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64); got != want {
			t.Fatalf("%d ns: got %s, want %s", d, got, want)
		}
	}
}
