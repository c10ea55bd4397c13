// SPDX-License-Identifier: Apache-2.0

package output

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/conntrace/conntrace/tracer/event"
	"github.com/conntrace/conntrace/tracer/services"
)

// Column widths of the text format. A longer value (an IPv6 address) pushes
// the rest of its line right rather than being cut.
const (
	wTime  = 16
	wEvent = 13
	wPID   = 8
	wComm  = 17
	wLocal = 26
	wDir   = 4
	wPeer  = 28
)

// TextHeader is the first line of text output.
var TextHeader = func() []byte {
	var b []byte
	b = Pad(append(b, "TIME"...), 0, wTime)
	b = Pad(append(b, "EVENT"...), wTime, wEvent)
	b = Pad(append(b, "PID"...), wTime+wEvent, wPID)
	b = Pad(append(b, "COMM"...), wTime+wEvent+wPID, wComm)
	b = Pad(append(b, "LOCAL"...), wTime+wEvent+wPID+wComm, wLocal)
	b = Pad(append(b, "DIR"...), wTime+wEvent+wPID+wComm+wLocal, wDir)
	b = Pad(append(b, "REMOTE"...), wTime+wEvent+wPID+wComm+wLocal+wDir, wPeer)
	return append(b, "DETAILS\n"...)
}()

// AppendText appends ev as one aligned line for people. The process name
// is escaped (see AppendTextSafe).
func AppendText(dst []byte, ev *event.Event) []byte {
	start := len(dst)
	col := func(width int) { dst = Pad(dst, start, width) }
	dst = appendLocalClock(dst, ev.Time)
	col(wTime)
	dst = append(dst, ev.Type.String()...)
	col(wTime + wEvent)
	if ev.Type == event.Lost {
		dst = append(dst, "WARNING: "...)
		dst = strconv.AppendUint(dst, ev.Lost, 10)
		dst = append(dst, " events lost"...)
		sep := ": "
		cause := func(n uint64, why string) {
			if n > 0 {
				dst = append(dst, sep...)
				dst = strconv.AppendUint(dst, n, 10)
				dst = append(dst, why...)
				sep = "; "
			}
		}
		cause(ev.LostDropped, " because the ring buffer was full (reader too slow; use filters)")
		cause(ev.LostSkipped, " hook runs the kernel skipped (nested on a busy CPU)")
		cause(ev.LostEvicted, " events of connections or UDP flows a full table had no room for")
		cause(ev.LostUnaccepted, " accepts of connections still in an accept queue when the run stopped")
		return append(dst, '\n')
	}
	dst = strconv.AppendUint(dst, uint64(ev.PID), 10)
	col(wTime + wEvent + wPID)
	dst = AppendTextSafe(dst, ev.CommBytes())
	col(wTime + wEvent + wPID + wComm)

	// The service name goes on the well-known side: the local port of a
	// listener or an accepted connection, the remote port of an outbound one.
	dst = appendHostPort(dst, ev, false, ev.Direction != event.DirOut)
	col(wTime + wEvent + wPID + wComm + wLocal)
	switch ev.Direction {
	case event.DirOut:
		dst = append(dst, "->"...)
	case event.DirIn:
		dst = append(dst, "<-"...)
	}
	col(wTime + wEvent + wPID + wComm + wLocal + wDir)
	hasConn := ev.Type.HasPeer()
	if hasConn {
		dst = appendHostPort(dst, ev, true, ev.Direction == event.DirOut)
	}
	col(wTime + wEvent + wPID + wComm + wLocal + wDir + wPeer)

	if hasConn {
		dst = append(dst, "conn="...)
		dst = strconv.AppendUint(dst, ev.ConnID, 10)
		dst = append(dst, ' ')
		if ev.RName != "" {
			dst = append(dst, "rname="...)
			dst = AppendTextSafe(dst, ev.RName)
			dst = append(dst, ' ')
		}
	}
	dst = append(dst, "uid="...)
	dst = strconv.AppendUint(dst, uint64(ev.UID), 10)
	if cg := ev.Cgroup; cg != nil && cg.Container != nil {
		c := cg.Container
		dst = append(dst, " container="...)
		dst = AppendTextSafe(dst, c.Label())
		if c.Pod != "" {
			dst = append(dst, " pod="...)
			if c.Namespace != "" {
				dst = AppendTextSafe(dst, c.Namespace)
				dst = append(dst, '/')
			}
			dst = AppendTextSafe(dst, c.Pod)
		}
	}
	if thread := ev.ThreadBytes(); thread != nil {
		dst = append(dst, " thread="...)
		dst = AppendTextSafe(dst, thread)
	}
	if ev.Proto != event.ProtoTCP {
		dst = append(dst, ' ')
		dst = append(dst, ev.Proto.String()...)
	}
	if int(ev.Type) < len(kindFormats) && kindFormats[ev.Type].text != nil {
		dst = kindFormats[ev.Type].text(dst, ev)
	}
	return append(dst, '\n')
}

func appendHostPort(dst []byte, ev *event.Event, remote, service bool) []byte {
	addr, port := ev.LAddr, ev.LPort
	if remote {
		addr, port = ev.RAddr, ev.RPort
	}
	dst = AppendAddrPort(dst, addr, port)
	if name := services.Name(port); service && name != "" {
		dst = append(dst, '/')
		dst = append(dst, name...)
	}
	return dst
}

// AppendAddrPort appends 1.2.3.4:80 or [2001:db8::1]:80, allocating nothing.
func AppendAddrPort(dst []byte, addr netip.Addr, port uint16) []byte {
	if addr.Is6() {
		dst = append(dst, '[')
		dst = addr.AppendTo(dst)
		dst = append(dst, ']')
	} else {
		dst = addr.AppendTo(dst)
	}
	dst = append(dst, ':')
	return strconv.AppendUint(dst, uint64(port), 10)
}

// appendDuration prints d with three significant decimals: 850us, 1.234ms,
// 2.766s.
func appendDuration(dst []byte, d time.Duration) []byte {
	switch {
	case d < time.Millisecond:
		dst = strconv.AppendInt(dst, d.Microseconds(), 10)
		return append(dst, "us"...)
	case d < time.Second:
		dst = strconv.AppendFloat(dst, float64(d)/1e6, 'f', 3, 64)
		return append(dst, "ms"...)
	}
	dst = strconv.AppendFloat(dst, d.Seconds(), 'f', 3, 64)
	return append(dst, 's')
}

// Pad adds spaces until the line (which began at start) is col wide, or
// one space when it is already wider.
func Pad(dst []byte, start, col int) []byte {
	n := col - (len(dst) - start)
	if n < 1 {
		n = 1
	}
	for ; n > 0; n-- {
		dst = append(dst, ' ')
	}
	return dst
}
