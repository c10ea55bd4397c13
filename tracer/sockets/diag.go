// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// OnPort lists the sockets of proto ("tcp" or "udp") in ns whose local
// port is port, IPv4 and IPv6, any state, with their processes. The kernel
// filters the dump (inet_diag bytecode), so it costs the same however
// many sockets the namespace holds, and a dump this small comes in one
// read, which sockets coming and going meanwhile cannot tear.
func OnPort(ns NS, proto string, port uint16) ([]Socket, error) {
	var ipproto uint8
	switch proto {
	case "tcp":
		ipproto = unix.IPPROTO_TCP
	case "udp":
		ipproto = unix.IPPROTO_UDP
	default:
		return nil, fmt.Errorf("unknown protocol %q", proto)
	}
	fd := -1
	// A netlink socket answers for the namespace it was created in.
	err := ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_INET_DIAG)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sock_diag %s: %w", proto, err)
	}
	defer unix.Close(fd)
	var out []Socket
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		var socks []Socket
		for try := 0; ; try++ {
			socks, err = dumpPort(fd, proto, family, ipproto, port)
			if !errors.Is(err, errInterrupted) || try == 4 {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("sock_diag %s: %w", proto, err)
		}
		out = append(out, socks...)
	}
	if err := attachProcs(out); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return less(&out[i], &out[j]) })
	return out, nil
}

// errInterrupted: the kernel marked the dump inconsistent (NLM_F_DUMP_INTR).
var errInterrupted = errors.New("dump interrupted by concurrent changes")

// Netlink and inet_diag constants (linux/sock_diag.h, linux/inet_diag.h).
const (
	sockDiagByFamily    = 20 // SOCK_DIAG_BY_FAMILY
	inetDiagReqBytecode = 1  // INET_DIAG_REQ_BYTECODE
	bcSrcGE             = 2  // INET_DIAG_BC_S_GE
	bcSrcLE             = 3  // INET_DIAG_BC_S_LE
	diagReqLen          = 56 // struct inet_diag_req_v2
	diagMsgLen          = 72 // struct inet_diag_msg
)

// portRequest is a SOCK_DIAG_BY_FAMILY dump request for every state,
// filtered to local port port: "sport >= port && sport <= port", as ss
// writes it (S_EQ is newer). Each comparison is an op followed by one
// holding the port; a jump to the end accepts, past it (len+4) rejects.
func portRequest(family, proto uint8, port uint16) []byte {
	ne := binary.NativeEndian
	bc := make([]byte, 16)
	op := func(at int, code, yes uint8, no uint16) {
		bc[at], bc[at+1] = code, yes
		ne.PutUint16(bc[at+2:], no)
		ne.PutUint16(bc[at+6:], port) // the NOP op after it: no = port
	}
	op(0, bcSrcGE, 8, 16+4)
	op(8, bcSrcLE, 8, 8+4)

	msg := make([]byte, unix.NLMSG_HDRLEN+diagReqLen+unix.SizeofRtAttr+len(bc))
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], sockDiagByFamily)
	ne.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	req := msg[unix.NLMSG_HDRLEN:]
	req[0], req[1] = family, proto
	ne.PutUint32(req[4:], ^uint32(0)) // every state
	attr := req[diagReqLen:]
	ne.PutUint16(attr[0:], uint16(unix.SizeofRtAttr+len(bc)))
	ne.PutUint16(attr[2:], inetDiagReqBytecode)
	copy(attr[unix.SizeofRtAttr:], bc)
	return msg
}

func dumpPort(fd int, name string, family, proto uint8, port uint16) ([]Socket, error) {
	if err := unix.Sendto(fd, portRequest(family, proto, port), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var out []Socket
	interrupted := false
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				if interrupted {
					return nil, errInterrupted
				}
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data)); e < 0 {
						return nil, unix.Errno(-e)
					}
				}
				return nil, errors.New("netlink error")
			case sockDiagByFamily:
				if len(m.Data) >= diagMsgLen {
					out = append(out, parseDiagMsg(name, m.Data))
				}
			}
		}
	}
}

// parseDiagMsg reads a struct inet_diag_msg; ports are big-endian, the
// rest native.
func parseDiagMsg(proto string, b []byte) Socket {
	ne, be := binary.NativeEndian, binary.BigEndian
	family := b[0]
	ip := func(at int) netip.Addr {
		if family == unix.AF_INET {
			return netip.AddrFrom4([4]byte(b[at : at+4]))
		}
		return netip.AddrFrom16([16]byte(b[at : at+16])).Unmap()
	}
	return Socket{
		Proto: proto, State: stateName(proto, b[1]),
		LPort: be.Uint16(b[4:]), RPort: be.Uint16(b[6:]),
		LAddr: ip(8), RAddr: ip(24),
		UID: ne.Uint32(b[64:]), Inode: ne.Uint32(b[68:]),
		Expires: time.Duration(ne.Uint32(b[52:])) * time.Millisecond,
		Queued:  ne.Uint32(b[56:]), Backlog: ne.Uint32(b[60:]),
	}
}

// ListenOverflows is ns's TcpExt ListenOverflows (netstat, nstat): SYNs
// and handshakes dropped since boot because a listener's accept queue was
// full.
func ListenOverflows(ns NS) (n uint64, err error) {
	err = ns.Do(func() error {
		// thread-self: /proc/net is the thread group leader's
		// namespace, not this thread's.
		b, err := os.ReadFile("/proc/thread-self/net/netstat")
		if err != nil {
			return err
		}
		lines := strings.Split(string(b), "\n")
		for i := 0; i+1 < len(lines); i += 2 {
			names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
			if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
				continue
			}
			for j, name := range names {
				if name == "ListenOverflows" {
					n, err = strconv.ParseUint(values[j], 10, 64)
					return err
				}
			}
		}
		return errors.New("/proc/thread-self/net/netstat has no TcpExt ListenOverflows")
	})
	return n, err
}

// ReusePort reads SO_REUSEPORT from the socket itself: a copy of p's
// descriptor of it (pidfd_getfd(2), Linux 5.6; it takes ptrace rights over
// p), checked to be that socket still.
func ReusePort(p Proc, inode uint32) (bool, error) {
	pidfd, err := unix.PidfdOpen(int(p.PID), 0)
	if err != nil {
		return false, fmt.Errorf("pidfd_open %d: %w", p.PID, err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, p.FD, 0)
	if err != nil {
		return false, fmt.Errorf("pidfd_getfd %d fd %d: %w", p.PID, p.FD, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Ino != uint64(inode) {
		return false, fmt.Errorf("process %d closed the socket", p.PID)
	}
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
	if err != nil {
		return false, fmt.Errorf("getsockopt SO_REUSEPORT: %w", err)
	}
	return v != 0, nil
}
