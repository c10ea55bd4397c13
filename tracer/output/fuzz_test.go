// SPDX-License-Identifier: Apache-2.0

package output

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/conntrace/conntrace/tracer/event"
	"github.com/conntrace/conntrace/tracer/sockets"
)

// unescapeText reverses AppendTextSafe.
func unescapeText(s []byte) ([]byte, bool) {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(s) && s[i+1] == 'x':
			n, err := strconv.ParseUint(string(s[i+2:i+4]), 16, 8)
			if err != nil {
				return nil, false
			}
			out = append(out, byte(n))
			i += 3
		default:
			return nil, false
		}
	}
	return out, true
}

// FuzzEscapes: any bytes (a process name is whatever the process set)
// print as printable ASCII that reads back to the same bytes, and as a
// valid JSON string that decodes to them, U+FFFD for each invalid byte.
func FuzzEscapes(f *testing.F) {
	for _, s := range []string{"curl", "\x1b[2J\x1b]0;x\a", "\xff\xfe\n\r", `a"b\c`, "日本語", "\xed\xa0\x80", "\u2028\x7f", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		text := AppendTextSafe(nil, b)
		for _, c := range text {
			if c <= ' ' || c >= 0x7f {
				t.Fatalf("%q -> %q: byte %#x", b, text, c)
			}
		}
		if back, ok := unescapeText(text); !ok || !bytes.Equal(back, b) {
			t.Fatalf("%q -> %q reads back as %q", b, text, back)
		}
		js := AppendJSONString(nil, b)
		var s string
		if !utf8.Valid(js) || json.Unmarshal(js, &s) != nil {
			t.Fatalf("%q -> %s: not a JSON string", b, js)
		}
		if want := string([]rune(string(b))); s != want {
			t.Fatalf("%q -> %s decodes to %q, want %q", b, js, s, want)
		}
	})
}

// FuzzFormat: every event the tracer can hand over, with any field values
// (names from the kernel and from /proc included), is one JSON object and
// one printable text line.
func FuzzFormat(f *testing.F) {
	f.Add(uint8(event.Connect), []byte("curl"), "nginx", uint32(0), uint16(40000), uint16(443), uint64(0), false, uint8(0), uint8(1))
	f.Add(uint8(event.BindFail), []byte("\x1b[31m"), "\xff\n", uint32(98), uint16(80), uint16(0), uint64(0), true, uint8(0), uint8(0))
	f.Add(uint8(event.Lost), []byte(""), "", uint32(0), uint16(0), uint16(0), uint64(12), false, uint8(0), uint8(0))
	f.Add(uint8(event.ConnectFail), []byte("psql"), "", uint32(4095), uint16(1), uint16(5432), uint64(0), true, uint8(3), uint8(2))
	f.Add(uint8(event.DNS), []byte("\x1b]0;x\x07.example."), "a\\b\xff.", uint32(3<<16|1), uint16(40000), uint16(53), uint64(0), false, uint8(0), uint8(1))
	f.Fuzz(func(t *testing.T, typ uint8, comm []byte, holder string, errno uint32, lport, rport uint16, lost uint64, v6 bool, reason, dir uint8) {
		types := append([]event.Type{event.Lost}, event.All...)
		ev := event.Event{Type: types[int(typ)%len(types)], Time: time.Unix(1, 2), Errno: errno, LPort: lport, RPort: rport,
			Lost: lost, LostDropped: lost / 2, LostSkipped: lost / 4, LostEvicted: lost - lost/2 - lost/4, Reason: event.Reason(reason % 6), Direction: event.Direction(dir % 3),
			Family: event.FamilyIPv4, LAddr: netip.AddrFrom4([4]byte{10, 0, 0, 1}), RAddr: netip.AddrFrom4([4]byte{10, 0, 0, 2})}
		if v6 {
			ev.Family, ev.LAddr, ev.RAddr = event.FamilyIPv6, netip.IPv6Loopback(), netip.IPv6Unspecified()
		}
		copy(ev.Comm[:], comm)
		if ev.Type == event.BindFail {
			ev.Holders = []event.Holder{{LAddr: ev.LAddr, LPort: lport, State: "LISTEN", Procs: []sockets.Proc{{PID: 1, Comm: holder}, {PID: 2, Comm: holder}}}}
			ev.HoldersError = holder
		}
		// A name a server or a client chose, any bytes; the outcomes.
		ev.RName = holder
		if ev.Type == event.DNS {
			ev.DNS = &event.Lookup{Name: comm, QType: uint16(errno), RCode: uint16(errno >> 16), Outcome: event.Outcome(reason % 4),
				Errno: errno, CNAMEs: [][]byte{[]byte(holder)}, Answers: []event.DNSAnswer{{Addr: ev.RAddr, TTL: errno}}, AnswerCount: int(lport)}
		}
		line := AppendJSON(nil, &ev)
		var m map[string]any
		if bytes.IndexByte(line, '\n') != len(line)-1 || !utf8.Valid(line) || json.Unmarshal(line, &m) != nil {
			t.Fatalf("not one JSON line: %q", line)
		}
		text := AppendText(nil, &ev)
		if bytes.IndexByte(text, '\n') != len(text)-1 {
			t.Fatalf("text is not one line: %q", text)
		}
		for _, c := range text[:len(text)-1] {
			if c < ' ' || c >= 0x7f {
				t.Fatalf("raw byte %#x in %q", c, text)
			}
		}
	})
}
