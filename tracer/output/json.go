// SPDX-License-Identifier: Apache-2.0

package output

import (
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/conntrace/conntrace/tracer/containers"
	"github.com/conntrace/conntrace/tracer/event"
	"github.com/conntrace/conntrace/tracer/sockets"
)

// JSONTimeLayout is RFC 3339 with exactly nine fractional digits, in UTC.
const JSONTimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// AppendJSON appends ev as one line of JSON contract v1 (see README).
func AppendJSON(dst []byte, ev *event.Event) []byte {
	dst = append(dst, `{"ts":"`...)
	dst = appendRFC3339Nano(dst, ev.Time)
	dst = append(dst, `","event":"`...)
	dst = append(dst, ev.Type.String()...)
	dst = append(dst, '"')
	if ev.Type == event.Lost {
		dst = append(dst, `,"count":`...)
		dst = strconv.AppendUint(dst, ev.Lost, 10)
		dst = append(dst, `,"dropped":`...)
		dst = strconv.AppendUint(dst, ev.LostDropped, 10)
		dst = append(dst, `,"skipped":`...)
		dst = strconv.AppendUint(dst, ev.LostSkipped, 10)
		dst = append(dst, `,"evicted":`...)
		dst = strconv.AppendUint(dst, ev.LostEvicted, 10)
		if ev.LostUnaccepted > 0 {
			dst = append(dst, `,"unaccepted":`...)
			dst = strconv.AppendUint(dst, ev.LostUnaccepted, 10)
		}
		return append(dst, "}\n"...)
	}
	hasConn := ev.Type.HasPeer()
	if hasConn {
		dst = append(dst, `,"conn_id":`...)
		dst = strconv.AppendUint(dst, ev.ConnID, 10)
	}
	dst = append(dst, `,"pid":`...)
	dst = strconv.AppendUint(dst, uint64(ev.PID), 10)
	dst = append(dst, `,"comm":`...)
	dst = AppendJSONString(dst, ev.CommBytes())
	if thread := ev.ThreadBytes(); thread != nil {
		dst = append(dst, `,"thread":`...)
		dst = AppendJSONString(dst, thread)
	}
	dst = append(dst, `,"uid":`...)
	dst = strconv.AppendUint(dst, uint64(ev.UID), 10)
	dst = appendJSONCgroup(dst, ev.CgroupID, ev.Cgroup)
	dst = append(dst, `,"proto":"`...)
	dst = append(dst, ev.Proto.String()...)
	dst = append(dst, `","family":"`...)
	dst = append(dst, ev.Family.String()...)
	dst = append(dst, '"')
	if ev.Direction != event.DirNone {
		dst = append(dst, `,"direction":"`...)
		dst = append(dst, ev.Direction.String()...)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"laddr":"`...)
	dst = ev.LAddr.AppendTo(dst)
	dst = append(dst, `","lport":`...)
	dst = strconv.AppendUint(dst, uint64(ev.LPort), 10)
	if hasConn {
		dst = append(dst, `,"raddr":"`...)
		dst = ev.RAddr.AppendTo(dst)
		dst = append(dst, `","rport":`...)
		dst = strconv.AppendUint(dst, uint64(ev.RPort), 10)
		if ev.RName != "" {
			dst = append(dst, `,"rname":`...)
			dst = AppendJSONString(dst, ev.RName)
		}
	}
	if int(ev.Type) < len(kindFormats) && kindFormats[ev.Type].json != nil {
		dst = kindFormats[ev.Type].json(dst, ev)
	}
	return append(dst, "}\n"...)
}

// appendErrorJSON appends a failure's errno, by name and number.
func appendErrorJSON(dst []byte, ev *event.Event) []byte {
	dst = append(dst, `,"error":"`...)
	dst = append(dst, ev.ErrorName()...)
	dst = append(dst, `","errno":`...)
	return strconv.AppendUint(dst, uint64(ev.Errno), 10)
}

// appendDropsJSON appends what this host dropped of a failed connection:
// "drops" (null when nobody watched), and the last drop's reason,
// direction and device.
func appendDropsJSON(dst []byte, ev *event.Event) []byte {
	if !ev.DropsWatched {
		return append(dst, `,"drops":null`...)
	}
	dst = append(dst, `,"drops":`...)
	dst = strconv.AppendUint(dst, uint64(ev.Drops), 10)
	if ev.Drops == 0 {
		return dst
	}
	dst = append(dst, `,"drop_reason":`...)
	dst = AppendJSONString(dst, []byte(ev.DropReason))
	if ev.DropInbound {
		dst = append(dst, `,"drop_direction":"in"`...)
	} else {
		dst = append(dst, `,"drop_direction":"out"`...)
	}
	if ev.DropIfindex != 0 {
		dst = append(dst, `,"drop_ifindex":`...)
		dst = strconv.AppendUint(dst, uint64(ev.DropIfindex), 10)
	}
	if ev.DropDevice != "" {
		dst = append(dst, `,"drop_device":`...)
		dst = AppendJSONString(dst, []byte(ev.DropDevice))
	}
	return dst
}

// appendHoldersJSON appends a list of sockets holding a port.
func appendHoldersJSON(dst []byte, hs []event.Holder) []byte {
	dst = append(dst, '[')
	for i := range hs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendHolderJSON(dst, &hs[i])
	}
	return append(dst, ']')
}

// appendHolderJSON appends one socket holding a port: "pid" and "comm"
// are its first process's (0 and "" for none), "procs" lists them all.
func appendHolderJSON(dst []byte, h *event.Holder) []byte {
	var first sockets.Proc
	if len(h.Procs) > 0 {
		first = h.Procs[0]
	}
	dst = append(dst, `{"pid":`...)
	dst = strconv.AppendUint(dst, uint64(first.PID), 10)
	dst = append(dst, `,"comm":`...)
	dst = AppendJSONString(dst, first.Comm)
	dst = AppendJSONContainer(dst, first.Container)
	dst = append(dst, `,"laddr":"`...)
	dst = h.LAddr.AppendTo(dst)
	dst = append(dst, `","lport":`...)
	dst = strconv.AppendUint(dst, uint64(h.LPort), 10)
	dst = append(dst, `,"state":"`...)
	dst = append(dst, h.State...)
	dst = append(dst, `","inode":`...)
	dst = strconv.AppendUint(dst, uint64(h.Inode), 10)
	dst = append(dst, `,"uid":`...)
	dst = strconv.AppendUint(dst, uint64(h.UID), 10)
	if h.State == "TIME_WAIT" {
		dst = append(dst, `,"expires_ms":`...)
		dst = strconv.AppendInt(dst, h.Expires.Milliseconds(), 10)
	}
	if h.State == "LISTEN" {
		dst = append(dst, `,"accept_queue":`...)
		dst = strconv.AppendUint(dst, uint64(h.Queued), 10)
		dst = append(dst, `,"backlog":`...)
		dst = strconv.AppendUint(dst, uint64(h.Backlog), 10)
	}
	if h.ReusePortKnown {
		dst = append(dst, `,"reuseport":`...)
		dst = strconv.AppendBool(dst, h.ReusePort)
	}
	dst = append(dst, `,"procs":[`...)
	for i, p := range h.Procs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"pid":`...)
		dst = strconv.AppendUint(dst, uint64(p.PID), 10)
		dst = append(dst, `,"comm":`...)
		dst = AppendJSONString(dst, p.Comm)
		dst = AppendJSONContainer(dst, p.Container)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"procs_seen":`...)
	dst = strconv.AppendBool(dst, h.ProcsSeen)
	return append(dst, '}')
}

// appendJSONCgroup appends the process's cgroup and container, when it is
// in a cgroup of its own: "cgroup_id", "cgroup" (its path, when it still
// existed when looked up) and "container" with the fields that are known.
func appendJSONCgroup(dst []byte, id uint64, cg *containers.Cgroup) []byte {
	if cg == nil || cg.Root() {
		return dst
	}
	// A cgroup's fields are the same on all its events, which come in
	// runs: the last one's are kept formatted (escaping a path and a
	// container byte by byte costs more than the rest of the line).
	if last := lastCgroup.Load(); last != nil && last.cg == cg && last.id == id {
		return append(dst, last.json...)
	}
	start := len(dst)
	dst = formatJSONCgroup(dst, id, cg)
	lastCgroup.Store(&cgroupJSON{cg: cg, id: id, json: slices.Clone(dst[start:])})
	return dst
}

// cgroupJSON is one cgroup's fields, formatted.
type cgroupJSON struct {
	cg   *containers.Cgroup // never changed once resolved
	id   uint64
	json []byte
}

var lastCgroup atomic.Pointer[cgroupJSON]

func formatJSONCgroup(dst []byte, id uint64, cg *containers.Cgroup) []byte {
	if cg.ID != 0 { // none where there is no cgroup v2
		dst = append(dst, `,"cgroup_id":`...)
		dst = strconv.AppendUint(dst, id, 10)
	}
	if cg.Path != "" {
		dst = append(dst, `,"cgroup":`...)
		dst = AppendJSONString(dst, cg.Path)
	}
	return AppendJSONContainer(dst, cg.Container)
}

// AppendJSONContainer appends ,"container":{...} with the fields that are
// known, or nothing for no container.
func AppendJSONContainer(dst []byte, c *containers.Container) []byte {
	if c == nil {
		return dst
	}
	dst = append(dst, `,"container":{"id":"`...)
	dst = append(dst, c.ID...) // 64 hex digits
	dst = append(dst, `","runtime":"`...)
	dst = append(dst, c.Runtime...) // one of ours
	dst = append(dst, '"')
	field := func(name, v string) {
		if v != "" {
			dst = append(dst, `,"`...)
			dst = append(dst, name...)
			dst = append(dst, `":`...)
			dst = AppendJSONString(dst, v)
		}
	}
	field("name", c.Name)
	field("image", c.Image)
	field("pod", c.Pod)
	field("namespace", c.Namespace)
	return append(dst, '}')
}
