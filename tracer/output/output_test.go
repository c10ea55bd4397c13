// SPDX-License-Identifier: Apache-2.0

package output

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/conntrace/conntrace/tracer/event"
	"github.com/conntrace/conntrace/tracer/sockets"
)

var ts = time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)

func comm(s string) (c [16]byte) { copy(c[:], s); return c }

var (
	connectEv = event.Event{Type: event.Connect, Time: ts, ConnID: 17, PID: 4242, UID: 1000, Comm: comm("curl"),
		Family: event.FamilyIPv4, Direction: event.DirOut,
		LAddr: netip.MustParseAddr("10.0.0.5"), LPort: 51234, RAddr: netip.MustParseAddr("93.184.216.34"), RPort: 443,
		Latency: 1234567 * time.Nanosecond}
	acceptEv = event.Event{Type: event.Accept, Time: ts, ConnID: 18, PID: 999, Comm: comm("nginx"),
		Family: event.FamilyIPv6, Direction: event.DirIn,
		LAddr: netip.MustParseAddr("2001:db8::2"), LPort: 443, RAddr: netip.MustParseAddr("2001:db8::1"), RPort: 40000}
	closeEv = event.Event{Type: event.Close, Time: ts, ConnID: 17, PID: 4242, UID: 1000, Comm: comm("curl"),
		Family: event.FamilyIPv4, Direction: event.DirOut,
		LAddr: netip.MustParseAddr("10.0.0.5"), LPort: 51234, RAddr: netip.MustParseAddr("93.184.216.34"), RPort: 443,
		Duration: 2766123 * time.Microsecond, TxBytes: 10000, RxBytes: 3000, Reason: event.ReasonResetIn,
		Retransmits: 2, SRTT: 850 * time.Microsecond, Idle: 35200 * time.Millisecond, IdleKnown: true}
	finEv = event.Event{Type: event.Close, Time: ts, ConnID: 18, PID: 999, Comm: comm("nginx"),
		Family: event.FamilyIPv6, Direction: event.DirIn,
		LAddr: netip.MustParseAddr("2001:db8::2"), LPort: 443, RAddr: netip.MustParseAddr("2001:db8::1"), RPort: 40000,
		Duration: 1500 * time.Microsecond, TxBytes: 5, RxBytes: 7, Reason: event.ReasonFIN, SRTT: 42 * time.Microsecond}
	udpConnectEv = event.Event{Type: event.Connect, Time: ts, ConnID: 20, PID: 4243, Comm: comm("dig"), Proto: event.ProtoUDP,
		Family: event.FamilyIPv4, Direction: event.DirOut,
		LAddr: netip.MustParseAddr("198.18.0.1"), LPort: 40053, RAddr: netip.MustParseAddr("198.18.0.2"), RPort: 53}
	udpCloseEv = event.Event{Type: event.Close, Time: ts, ConnID: 21, PID: 998, Comm: comm("dnsmasq"), Proto: event.ProtoUDP,
		Family: event.FamilyIPv4, Direction: event.DirIn,
		LAddr: netip.MustParseAddr("198.18.0.2"), LPort: 53, RAddr: netip.MustParseAddr("198.18.0.1"), RPort: 40053,
		Duration: 350 * time.Microsecond, TxBytes: 120, RxBytes: 52, TxPackets: 1, RxPackets: 1, Reason: event.ReasonIdle}
	udpDropEv = event.Event{Type: event.Drop, Time: ts, ConnID: 22, PID: 998, Comm: comm("dnsmasq"), Proto: event.ProtoUDP,
		Family: event.FamilyIPv4, Direction: event.DirIn,
		LAddr: netip.MustParseAddr("198.18.0.2"), LPort: 53, RAddr: netip.MustParseAddr("198.18.0.1"), RPort: 40054,
		Drops: 17, DropReason: "SOCKET_RCVBUFF", RcvBuf: 4608, Queued: 4352}
	dnsEv = event.Event{Type: event.DNS, Time: ts, ConnID: 23, PID: 4243, Comm: comm("curl"), Proto: event.ProtoUDP,
		Family: event.FamilyIPv4, Direction: event.DirOut,
		LAddr: netip.MustParseAddr("198.18.0.1"), LPort: 40060, RAddr: netip.MustParseAddr("198.18.0.2"), RPort: 53,
		DNS: &event.Lookup{ID: 4711, Name: []byte("www.test.example."), QType: 1, Latency: 812 * time.Microsecond,
			Answers:     []event.DNSAnswer{{Addr: netip.MustParseAddr("198.18.0.10"), TTL: 300}, {Addr: netip.MustParseAddr("198.18.0.11"), TTL: 300}},
			AnswerCount: 2, CNAMEs: [][]byte{[]byte("api.test.example.")}}}
	nxdomainEv = event.Event{Type: event.DNS, Time: ts, ConnID: 24, PID: 4243, Comm: comm("curl"), Proto: event.ProtoUDP,
		Family: event.FamilyIPv6, Direction: event.DirOut,
		LAddr: netip.MustParseAddr("2001:db8::1"), LPort: 40061, RAddr: netip.MustParseAddr("2001:db8::53"), RPort: 53,
		DNS: &event.Lookup{ID: 4712, Name: []byte("api.test.exampel."), QType: 28, RCode: 3, Latency: 1500 * time.Microsecond}}
	dnsTimeoutEv = event.Event{Type: event.DNS, Time: ts, ConnID: 25, PID: 4243, Comm: comm("curl"), Proto: event.ProtoUDP,
		Family: event.FamilyIPv4, Direction: event.DirOut,
		LAddr: netip.MustParseAddr("198.18.0.1"), LPort: 40062, RAddr: netip.MustParseAddr("198.18.0.3"), RPort: 53,
		DNS: &event.Lookup{ID: 4713, Name: []byte("api.test.example."), QType: 1, Outcome: event.TimedOut, Latency: 5 * time.Second, DropsWatched: true}}
	dnsDroppedEv = event.Event{Type: event.DNS, Time: ts, ConnID: 29, PID: 4243, Comm: comm("curl"), Proto: event.ProtoUDP,
		Family: event.FamilyIPv4, Direction: event.DirOut,
		LAddr: netip.MustParseAddr("198.18.0.1"), LPort: 40066, RAddr: netip.MustParseAddr("198.18.0.2"), RPort: 53,
		DNS: &event.Lookup{ID: 4715, Name: []byte("api.test.example."), QType: 28, Outcome: event.TimedOut, Latency: 5 * time.Second,
			DropsWatched: true, Drops: 2, DropReason: "NETFILTER_DROP"}}
	dnsRefusedEv = event.Event{Type: event.DNS, Time: ts, ConnID: 28, PID: 4243, Comm: comm("curl"), Proto: event.ProtoUDP,
		Family: event.FamilyIPv4, Direction: event.DirOut,
		LAddr: netip.MustParseAddr("198.18.0.1"), LPort: 40065, RAddr: netip.MustParseAddr("198.18.0.4"), RPort: 53,
		DNS: &event.Lookup{ID: 4714, Name: []byte("api.test.example."), QType: 1, Outcome: event.Unreachable, Latency: 90 * time.Microsecond,
			Errno: 111, ICMPFrom: netip.MustParseAddr("198.18.0.4"), ICMPType: 3, ICMPCode: 3}}
	dnsDropEv = event.Event{Type: event.Drop, Time: ts, ConnID: 31, PID: 4243, Comm: comm("curl"), Proto: event.ProtoUDP,
		Family: event.FamilyIPv4, Direction: event.DirOut,
		LAddr: netip.MustParseAddr("198.18.0.1"), LPort: 40068, RAddr: netip.MustParseAddr("198.18.0.4"), RPort: 53,
		Drops: 1, DropReason: "NETFILTER_DROP", DropInbound: true}
	dnsBlockedEv = event.Event{Type: event.DNS, Time: ts, ConnID: 30, PID: 4243, Comm: comm("curl"), Proto: event.ProtoUDP,
		Family: event.FamilyIPv4, Direction: event.DirOut,
		LAddr: netip.MustParseAddr("198.18.0.1"), LPort: 40067, RAddr: netip.MustParseAddr("198.18.0.5"), RPort: 53,
		DNS: &event.Lookup{ID: 4716, Name: []byte("api.test.example."), QType: 1, Outcome: event.Unreachable, Errno: 1,
			DropsWatched: true, Drops: 1, DropReason: "NETFILTER_DROP", DropOut: true}}
	hostileDNSEv = event.Event{Type: event.DNS, Time: ts, ConnID: 26, PID: 4243, Comm: comm("curl"), Proto: event.ProtoUDP,
		Family: event.FamilyIPv4, Direction: event.DirOut,
		LAddr: netip.MustParseAddr("198.18.0.1"), LPort: 40063, RAddr: netip.MustParseAddr("198.18.0.2"), RPort: 53,
		DNS: &event.Lookup{ID: 1, Name: []byte("\x1b]0;pwn\x07\\.\x22q\x22.example."), QType: 16, RCode: 2, Latency: time.Millisecond, Partial: true}}
	namedConnectEv = event.Event{Type: event.Connect, Time: ts, ConnID: 27, PID: 4243, Comm: comm("curl"), Proto: event.ProtoTCP,
		Family: event.FamilyIPv4, Direction: event.DirOut, Latency: 300 * time.Microsecond,
		LAddr: netip.MustParseAddr("198.18.0.1"), LPort: 40064, RAddr: netip.MustParseAddr("198.18.0.10"), RPort: 443, RName: "www.test.example"}
	noSocketEv = event.Event{Type: event.Drop, Time: ts, Proto: event.ProtoUDP, NetNS: 4026531840,
		Family: event.FamilyIPv4, Direction: event.DirIn,
		LAddr: netip.MustParseAddr("198.18.0.2"), LPort: 53, RAddr: netip.MustParseAddr("198.18.0.1"), RPort: 40055,
		Drops: 3, DropReason: "NO_SOCKET", ListenersNetNS: 4026531840,
		Listeners: []event.Holder{{LAddr: netip.MustParseAddr("127.0.0.1"), LPort: 53, State: "UNCONN", Inode: 4713,
			Procs: []sockets.Proc{{PID: 998, Comm: "dnsmasq"}}, ProcsSeen: true}}}
	csumEv = event.Event{Type: event.Drop, Time: ts, Proto: event.ProtoUDP,
		Family: event.FamilyIPv6, Direction: event.DirIn,
		LAddr: netip.MustParseAddr("2001:db8::2"), LPort: 443, RAddr: netip.MustParseAddr("2001:db8::1"), RPort: 40056,
		Drops: 1, DropReason: "UDP_CSUM"}
	listenEv = event.Event{Type: event.Listen, Time: ts, PID: 999, Comm: comm("nginx"),
		Family: event.FamilyIPv4, LAddr: netip.MustParseAddr("0.0.0.0"), LPort: 80}
	lostEv     = event.Event{Type: event.Lost, Time: ts, Lost: 12, LostDropped: 9, LostEvicted: 3}
	lastLostEv = event.Event{Type: event.Lost, Time: ts, Lost: 5, LostUnaccepted: 5}
	connFailEv = event.Event{Type: event.ConnectFail, Time: ts, ConnID: 9, PID: 4242, Comm: comm("psql"),
		Family: event.FamilyIPv4, Direction: event.DirOut, Errno: 111, Latency: 312 * time.Microsecond, DropsWatched: true,
		LAddr: netip.MustParseAddr("10.0.0.5"), LPort: 40000, RAddr: netip.MustParseAddr("10.0.0.7"), RPort: 5432}
	timeoutEv = event.Event{Type: event.ConnectFail, Time: ts, ConnID: 10, PID: 4242, Comm: comm("psql"),
		Family: event.FamilyIPv4, Direction: event.DirOut, Errno: 110, Latency: 3008 * time.Millisecond,
		LAddr: netip.MustParseAddr("10.0.0.5"), LPort: 40002, RAddr: netip.MustParseAddr("10.0.0.7"), RPort: 5432,
		Retransmits: 1, DropsWatched: true, Drops: 2, DropReason: "NETFILTER_DROP"}
	icmpEv = event.Event{Type: event.ConnectFail, Time: ts, ConnID: 11, PID: 4242, Comm: comm("psql"),
		Family: event.FamilyIPv4, Direction: event.DirOut, Errno: 113, Latency: 1004 * time.Millisecond,
		LAddr: netip.MustParseAddr("198.18.0.1"), LPort: 40004, RAddr: netip.MustParseAddr("198.18.2.9"), RPort: 5432,
		Retransmits: 1, DropsWatched: true, ICMPWatched: true, ICMPFrom: netip.MustParseAddr("198.18.0.254"), ICMPType: 3, ICMPCode: 1}
	refusedHereEv = event.Event{Type: event.ConnectFail, Time: ts, ConnID: 9, PID: 4242, Comm: comm("psql"),
		Family: event.FamilyIPv4, Direction: event.DirOut, Errno: 111, NetNS: 4026531840,
		LAddr: netip.MustParseAddr("127.0.0.1"), LPort: 40000, RAddr: netip.MustParseAddr("127.0.0.2"), RPort: 5432,
		Listeners: []event.Holder{{LAddr: netip.MustParseAddr("127.0.0.1"), LPort: 5432, State: "LISTEN", Inode: 4712,
			Procs: []sockets.Proc{{PID: 77, Comm: "postgres"}}, ProcsSeen: true, Backlog: 200}}, ListenersNetNS: 4026531840, ListenOverflows: 0, OverflowsKnown: true}
	bindFailEv = event.Event{Type: event.BindFail, Time: ts, PID: 1234, Comm: comm("nginx"), UID: 33,
		Family: event.FamilyIPv4, Errno: 98, Proto: event.ProtoTCP,
		LAddr: netip.MustParseAddr("0.0.0.0"), LPort: 80,
		Holders: []event.Holder{{LAddr: netip.MustParseAddr("0.0.0.0"), LPort: 80, State: "LISTEN", Inode: 4711,
			Procs: []sockets.Proc{{PID: 999, Comm: "nginx"}}, ProcsSeen: true, ReusePortKnown: true, Queued: 3, Backlog: 511}}}
)

// The JSON contract v1, field for field (README "JSON output").
func TestJSONContract(t *testing.T) {
	for _, tc := range []struct {
		ev   event.Event
		want string
	}{
		{connectEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"connect","conn_id":17,"pid":4242,"comm":"curl","uid":1000,"proto":"tcp","family":"ipv4","direction":"out","laddr":"10.0.0.5","lport":51234,"raddr":"93.184.216.34","rport":443,"latency_us":1234}`},
		{acceptEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"accept","conn_id":18,"pid":999,"comm":"nginx","uid":0,"proto":"tcp","family":"ipv6","direction":"in","laddr":"2001:db8::2","lport":443,"raddr":"2001:db8::1","rport":40000}`},
		{closeEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"close","conn_id":17,"pid":4242,"comm":"curl","uid":1000,"proto":"tcp","family":"ipv4","direction":"out","laddr":"10.0.0.5","lport":51234,"raddr":"93.184.216.34","rport":443,"duration_ms":2766.123,"tx_bytes":10000,"rx_bytes":3000,"reason":"reset_in","retransmits":2,"srtt_us":850,"idle_ms":35200.000,"unread_bytes":0,"linger0":false,"explain":"reset by the peer after 35.200s without a packet from it: an idle timeout (the peer's, or a load balancer's, NAT's or firewall's on the path)"}`},
		{finEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"close","conn_id":18,"pid":999,"comm":"nginx","uid":0,"proto":"tcp","family":"ipv6","direction":"in","laddr":"2001:db8::2","lport":443,"raddr":"2001:db8::1","rport":40000,"duration_ms":1.500,"tx_bytes":5,"rx_bytes":7,"reason":"fin","retransmits":0,"srtt_us":42}`},
		{connFailEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"connect_fail","conn_id":9,"pid":4242,"comm":"psql","uid":0,"proto":"tcp","family":"ipv4","direction":"out","laddr":"10.0.0.5","lport":40000,"raddr":"10.0.0.7","rport":5432,"error":"ECONNREFUSED","errno":111,"waited_ms":0.312,"syn_retransmits":0,"drops":0,"icmp_watched":false,"explain":"ECONNREFUSED: nothing listening on 10.0.0.7:5432 (or a firewall rejected it)"}`},
		{timeoutEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"connect_fail","conn_id":10,"pid":4242,"comm":"psql","uid":0,"proto":"tcp","family":"ipv4","direction":"out","laddr":"10.0.0.5","lport":40002,"raddr":"10.0.0.7","rport":5432,"error":"ETIMEDOUT","errno":110,"waited_ms":3008.000,"syn_retransmits":1,"drops":2,"drop_reason":"NETFILTER_DROP","drop_direction":"out","icmp_watched":false,"explain":"ETIMEDOUT: no answer from 10.0.0.7:5432 to 2 SYNs over 3.008s; this host dropped them (NETFILTER_DROP): a firewall rule here (nftables, iptables)"}`},
		{icmpEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"connect_fail","conn_id":11,"pid":4242,"comm":"psql","uid":0,"proto":"tcp","family":"ipv4","direction":"out","laddr":"198.18.0.1","lport":40004,"raddr":"198.18.2.9","rport":5432,"error":"EHOSTUNREACH","errno":113,"waited_ms":1004.000,"syn_retransmits":1,"drops":0,"icmp_watched":true,"icmp":{"from":"198.18.0.254","type":3,"code":1,"name":"host unreachable"},"explain":"EHOSTUNREACH: 198.18.0.254 answered the SYN to 198.18.2.9:5432 with ICMP host unreachable (type 3, code 1)"}`},
		{refusedHereEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"connect_fail","conn_id":9,"pid":4242,"comm":"psql","uid":0,"proto":"tcp","family":"ipv4","direction":"out","laddr":"127.0.0.1","lport":40000,"raddr":"127.0.0.2","rport":5432,"error":"ECONNREFUSED","errno":111,"waited_ms":0.000,"syn_retransmits":0,"drops":null,"icmp_watched":false,"explain":"ECONNREFUSED: nothing listens on 127.0.0.2:5432; 127.0.0.1:5432 is held by 77 postgres (LISTEN): the service is bound to another address","listeners_elsewhere":[{"pid":77,"comm":"postgres","laddr":"127.0.0.1","lport":5432,"state":"LISTEN","inode":4712,"uid":0,"accept_queue":0,"backlog":200,"procs":[{"pid":77,"comm":"postgres"}],"procs_seen":true}],"listeners_netns":4026531840,"listen_overflows":0}`},
		{bindFailEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"bind_fail","pid":1234,"comm":"nginx","uid":33,"proto":"tcp","family":"ipv4","laddr":"0.0.0.0","lport":80,"error":"EADDRINUSE","errno":98,"reuseaddr":false,"reuseport":false,"v6only":false,"explain":"EADDRINUSE: 0.0.0.0:80 is held by 999 nginx (LISTEN)","holders":[{"pid":999,"comm":"nginx","laddr":"0.0.0.0","lport":80,"state":"LISTEN","inode":4711,"uid":0,"accept_queue":3,"backlog":511,"reuseport":false,"procs":[{"pid":999,"comm":"nginx"}],"procs_seen":true}]}`},
		{udpConnectEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"connect","conn_id":20,"pid":4243,"comm":"dig","uid":0,"proto":"udp","family":"ipv4","direction":"out","laddr":"198.18.0.1","lport":40053,"raddr":"198.18.0.2","rport":53}`},
		{udpCloseEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"close","conn_id":21,"pid":998,"comm":"dnsmasq","uid":0,"proto":"udp","family":"ipv4","direction":"in","laddr":"198.18.0.2","lport":53,"raddr":"198.18.0.1","rport":40053,"duration_ms":0.350,"tx_bytes":120,"rx_bytes":52,"tx_packets":1,"rx_packets":1,"drops":0,"reason":"idle"}`},
		{udpDropEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"drop","conn_id":22,"pid":998,"comm":"dnsmasq","uid":0,"proto":"udp","family":"ipv4","direction":"in","laddr":"198.18.0.2","lport":53,"raddr":"198.18.0.1","rport":40054,"drops":17,"drop_reason":"SOCKET_RCVBUFF","rcvbuf":4608,"queued":4352,"explain":"its receive buffer was full (4352 of 4608 bytes): the process reads slower than datagrams arrive (a larger SO_RCVBUF, up to net.core.rmem_max, absorbs bursts)"}`},
		{listenEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"listen","pid":999,"comm":"nginx","uid":0,"proto":"tcp","family":"ipv4","laddr":"0.0.0.0","lport":80}`},
		{noSocketEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"drop","conn_id":0,"pid":0,"comm":"","uid":0,"proto":"udp","family":"ipv4","direction":"in","laddr":"198.18.0.2","lport":53,"raddr":"198.18.0.1","rport":40055,"drops":3,"drop_reason":"NO_SOCKET","rcvbuf":0,"queued":0,"explain":"nothing is bound to 198.18.0.2:53; 127.0.0.1:53 is held by 998 dnsmasq (UNCONN): the service is bound to another address; the sender gets ICMP port unreachable","listeners_elsewhere":[{"pid":998,"comm":"dnsmasq","laddr":"127.0.0.1","lport":53,"state":"UNCONN","inode":4713,"uid":0,"procs":[{"pid":998,"comm":"dnsmasq"}],"procs_seen":true}],"listeners_netns":4026531840}`},
		{csumEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"drop","conn_id":0,"pid":0,"comm":"","uid":0,"proto":"udp","family":"ipv6","direction":"in","laddr":"2001:db8::2","lport":443,"raddr":"2001:db8::1","rport":40056,"drops":1,"drop_reason":"UDP_CSUM","rcvbuf":0,"queued":0,"explain":"their UDP checksum was wrong: damaged on the way (a faulty NIC, driver, cable or middlebox)"}`},
		{dnsEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"dns","conn_id":23,"pid":4243,"comm":"curl","uid":0,"proto":"udp","family":"ipv4","direction":"out","laddr":"198.18.0.1","lport":40060,"raddr":"198.18.0.2","rport":53,"id":4711,"name":"www.test.example","qtype":"A","rcode":"NOERROR","latency_us":812,"truncated":false,"answers":[{"addr":"198.18.0.10","ttl":300},{"addr":"198.18.0.11","ttl":300}],"answer_count":2,"cnames":["api.test.example"]}`},
		{nxdomainEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"dns","conn_id":24,"pid":4243,"comm":"curl","uid":0,"proto":"udp","family":"ipv6","direction":"out","laddr":"2001:db8::1","lport":40061,"raddr":"2001:db8::53","rport":53,"id":4712,"name":"api.test.exampel","qtype":"AAAA","rcode":"NXDOMAIN","latency_us":1500,"truncated":false,"answers":[],"answer_count":0,"cnames":[],"explain":"NXDOMAIN: [2001:db8::53]:53 says api.test.exampel does not exist"}`},
		{dnsTimeoutEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"dns","conn_id":25,"pid":4243,"comm":"curl","uid":0,"proto":"udp","family":"ipv4","direction":"out","laddr":"198.18.0.1","lport":40062,"raddr":"198.18.0.3","rport":53,"id":4713,"name":"api.test.example","qtype":"A","rcode":"timeout","latency_us":5000000,"drops":0,"explain":"no answer from 198.18.0.3:53 within 5.000s; this host dropped neither the query nor an answer: the server or the path is silent (a firewall there, the server down or overloaded)"}`},
		{dnsDroppedEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"dns","conn_id":29,"pid":4243,"comm":"curl","uid":0,"proto":"udp","family":"ipv4","direction":"out","laddr":"198.18.0.1","lport":40066,"raddr":"198.18.0.2","rport":53,"id":4715,"name":"api.test.example","qtype":"AAAA","rcode":"timeout","latency_us":5000000,"drops":2,"drop_reason":"NETFILTER_DROP","drop_direction":"in","explain":"no answer from 198.18.0.2:53 within 5.000s; this host dropped 2 answers (NETFILTER_DROP): a firewall rule here (nftables, iptables)"}`},
		{dnsRefusedEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"dns","conn_id":28,"pid":4243,"comm":"curl","uid":0,"proto":"udp","family":"ipv4","direction":"out","laddr":"198.18.0.1","lport":40065,"raddr":"198.18.0.4","rport":53,"id":4714,"name":"api.test.example","qtype":"A","rcode":"unreachable","latency_us":90,"error":"ECONNREFUSED","errno":111,"icmp":{"from":"198.18.0.4","type":3,"code":3,"name":"port unreachable"},"explain":"ECONNREFUSED: the query to 198.18.0.4:53 was answered by 198.18.0.4 with ICMP port unreachable (type 3, code 3): no DNS server listens there"}`},
		{dnsBlockedEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"dns","conn_id":30,"pid":4243,"comm":"curl","uid":0,"proto":"udp","family":"ipv4","direction":"out","laddr":"198.18.0.1","lport":40067,"raddr":"198.18.0.5","rport":53,"id":4716,"name":"api.test.example","qtype":"A","rcode":"unreachable","latency_us":0,"drops":1,"drop_reason":"NETFILTER_DROP","drop_direction":"out","error":"EPERM","errno":1,"explain":"EPERM: this host dropped the query to 198.18.0.5:53 on its way out (NETFILTER_DROP): a firewall rule here (nftables, iptables)"}`},
		{hostileDNSEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"dns","conn_id":26,"pid":4243,"comm":"curl","uid":0,"proto":"udp","family":"ipv4","direction":"out","laddr":"198.18.0.1","lport":40063,"raddr":"198.18.0.2","rport":53,"id":1,"name":"\u001b]0;pwn\u0007\\.\"q\".example","qtype":"TXT","rcode":"SERVFAIL","latency_us":1000,"truncated":false,"answers":[],"answer_count":0,"cnames":[],"partial":true,"explain":"SERVFAIL from 198.18.0.2:53: the server could not get an answer (its upstream failed, refused or timed out, or DNSSEC validation failed)"}`},
		{namedConnectEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"connect","conn_id":27,"pid":4243,"comm":"curl","uid":0,"proto":"tcp","family":"ipv4","direction":"out","laddr":"198.18.0.1","lport":40064,"raddr":"198.18.0.10","rport":443,"rname":"www.test.example","latency_us":300}`},
		{lostEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"lost","count":12,"dropped":9,"skipped":0,"evicted":3}`},
		{lastLostEv, `{"ts":"2026-11-25T10:00:00.123456789Z","event":"lost","count":5,"dropped":0,"skipped":0,"evicted":0,"unaccepted":5}`},
	} {
		got := string(AppendJSON(nil, &tc.ev))
		if got != tc.want+"\n" {
			t.Errorf("%s:\n got %s\nwant %s", tc.ev.Type, got, tc.want)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(got), &m); err != nil {
			t.Errorf("%s: invalid JSON: %v", tc.ev.Type, err)
		}
	}
}

func TestJSONTimestampKeepsNineDigits(t *testing.T) {
	ev := listenEv
	ev.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := string(AppendJSON(nil, &ev)); !strings.Contains(got, `"ts":"2026-01-02T03:04:05.000000000Z"`) {
		t.Errorf("ts: %s", got)
	}
}

// A process can name itself anything (prctl PR_SET_NAME): control bytes,
// escape sequences, quotes, invalid UTF-8.
var hostile = []string{"\x1b[2J\x1b[31mEVIL", "a\"b\\c\nd", "\xff\xfe\x80", "tab\tnul", "日本", "\x7f\x01"}

func TestJSONHostileComm(t *testing.T) {
	for _, name := range hostile {
		ev := connectEv
		ev.Comm = comm(name)
		line := AppendJSON(nil, &ev)
		var m struct{ Comm string }
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%q: invalid JSON %s: %v", name, line, err)
		}
		// What encoding/json makes of the same bytes.
		ref, _ := json.Marshal(name)
		var want string
		json.Unmarshal(ref, &want)
		if m.Comm != want {
			t.Errorf("%q round-trips as %q, want %q", name, m.Comm, want)
		}
		if bytes.ContainsAny(line[:len(line)-1], "\x1b\n\t\x00\x7f") {
			t.Errorf("%q: raw control byte in %q", name, line)
		}
	}
}

func TestTextHostileComm(t *testing.T) {
	for _, name := range hostile {
		ev := connectEv
		ev.Comm = comm(name)
		line := AppendText(nil, &ev)
		body := line[:len(line)-1]
		for _, c := range body {
			if c < ' ' || c >= 0x7f {
				t.Fatalf("%q: text line has byte %#x: %q", name, c, line)
			}
		}
	}
	ev := connectEv
	ev.Comm = comm("\x1b[31m a\\")
	if got := string(AppendText(nil, &ev)); !strings.Contains(got, ` \x1b[31m\x20a\\ `) {
		t.Errorf("escaping: %q", got)
	}
}

func TestText(t *testing.T) {
	cases := []struct {
		ev   event.Event
		want []string // in order
	}{
		{connectEv, []string{"connect", "4242", "curl", "10.0.0.5:51234", "->", "93.184.216.34:443/https", "conn=17", "uid=1000", "latency=1.235ms"}},
		{acceptEv, []string{"accept", "999", "nginx", "[2001:db8::2]:443/https", "<-", "[2001:db8::1]:40000", "conn=18"}},
		{closeEv, []string{"close", "curl", "conn=17", "duration=2.766s", "tx=10000", "rx=3000", "reason=reset_in", "rtt=850us", "retrans=2",
			"reset by the peer after 35.200s without a packet from it"}},
		{connFailEv, []string{"connect_fail", "psql", "10.0.0.5:40000", "->", "10.0.0.7:5432/postgresql", "conn=9",
			"ECONNREFUSED: nothing listening on 10.0.0.7:5432"}},
		{bindFailEv, []string{"bind_fail", "1234", "nginx", "0.0.0.0:80/http", "uid=33",
			"EADDRINUSE: 0.0.0.0:80 is held by 999 nginx (LISTEN)"}},
		{listenEv, []string{"listen", "nginx", "0.0.0.0:80/http", "uid=0"}},
		{udpCloseEv, []string{"close", "dnsmasq", "198.18.0.2:53/domain", "<-", "198.18.0.1:40053", "conn=21", "udp", "duration=350us",
			"tx=120", "rx=52", "tx_pkts=1", "rx_pkts=1", "reason=idle"}},
		{udpDropEv, []string{"drop", "998", "dnsmasq", "198.18.0.2:53/domain", "<-", "198.18.0.1:40054", "conn=22", "udp", "drops=17",
			"drop_reason=SOCKET_RCVBUFF", "rcvbuf=4608", "queued=4352", "its receive buffer was full (4352 of 4608 bytes)"}},
		{noSocketEv, []string{"drop", "198.18.0.2:53/domain", "<-", "198.18.0.1:40055", "udp", "drops=3", "drop_reason=NO_SOCKET",
			"nothing is bound to 198.18.0.2:53; 127.0.0.1:53 is held by 998 dnsmasq (UNCONN): the service is bound to another address"}},
		{csumEv, []string{"drop", "[2001:db8::2]:443/https", "<-", "[2001:db8::1]:40056", "udp", "drops=1", "drop_reason=UDP_CSUM",
			"their UDP checksum was wrong"}},
		{dnsEv, []string{"dns", "4243", "curl", "198.18.0.1:40060", "->", "198.18.0.2:53/domain", "conn=23", "udp", "A www.test.example NOERROR",
			"latency=812us", "cname=api.test.example", "answers=198.18.0.10,198.18.0.11"}},
		{nxdomainEv, []string{"dns", "[2001:db8::53]:53/domain", "udp", "AAAA api.test.exampel NXDOMAIN", "latency=1.500ms",
			": NXDOMAIN: [2001:db8::53]:53 says api.test.exampel does not exist"}},
		{dnsTimeoutEv, []string{"dns", "198.18.0.3:53/domain", "udp", "A api.test.example timeout: no answer from 198.18.0.3:53 within 5.000s; this host dropped neither"}},
		{dnsDroppedEv, []string{"dns", "AAAA api.test.example timeout: no answer from 198.18.0.2:53 within 5.000s; this host dropped 2 answers (NETFILTER_DROP)"}},
		{dnsDropEv, []string{"drop", "198.18.0.1:40068", "->", "198.18.0.4:53/domain", "conn=31", "udp", "drops=1", "drop_reason=NETFILTER_DROP",
			"this host dropped it before the socket got it (NETFILTER_DROP): a firewall rule here"}},
		{dnsBlockedEv, []string{"dns", "198.18.0.5:53/domain", "A api.test.example unreachable: EPERM: this host dropped the query to 198.18.0.5:53 on its way out (NETFILTER_DROP): a firewall rule here"}},
		{dnsRefusedEv, []string{"dns", "198.18.0.4:53/domain", "A api.test.example unreachable: ECONNREFUSED: the query to 198.18.0.4:53 was answered by 198.18.0.4 with ICMP port unreachable"}},
		{hostileDNSEv, []string{"dns", "TXT \\x1b]0;pwn\\x07\\\\.\"q\".example SERVFAIL"}},
		{namedConnectEv, []string{"connect", "198.18.0.10:443/https", "conn=27 rname=www.test.example uid=0", "latency=300us"}},
	}
	for _, tc := range cases {
		got := string(AppendText(nil, &tc.ev))
		if !strings.HasSuffix(got, "\n") || strings.Count(got, "\n") != 1 {
			t.Errorf("%s: not one line: %q", tc.ev.Type, got)
		}
		rest := got
		for _, w := range tc.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("%s: %q missing (in order) from %q", tc.ev.Type, w, got)
				break
			}
			rest = rest[i+len(w):]
		}
	}
	// Columns line up with the header for IPv4.
	hdr := string(TextHeader)
	line := string(AppendText(nil, &connectEv))
	for _, col := range []string{"EVENT", "PID", "COMM", "LOCAL", "DIR", "REMOTE", "DETAILS"} {
		i := strings.Index(hdr, col)
		if line[i-1] != ' ' || line[i] == ' ' {
			t.Errorf("column %s (at %d) does not start a field in %q", col, i, line)
		}
	}
	if got := string(AppendText(nil, &lostEv)); !strings.Contains(got, "WARNING: 12 events lost: 9 because the ring buffer was full (reader too slow; use filters); 3 events of connections or UDP flows a full table had no room for\n") {
		t.Errorf("lost: %q", got)
	}
	if got := string(AppendText(nil, &lastLostEv)); !strings.Contains(got, "WARNING: 5 events lost: 5 accepts of connections still in an accept queue when the run stopped\n") {
		t.Errorf("lost at the end: %q", got)
	}
}

func TestDurations(t *testing.T) {
	for d, want := range map[time.Duration]string{
		850 * time.Microsecond:    "850us",
		1234567 * time.Nanosecond: "1.235ms",
		2766 * time.Millisecond:   "2.766s",
	} {
		if got := string(appendDuration(nil, d)); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}

func TestFormattingDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 512)
	for _, ev := range []event.Event{connectEv, acceptEv, closeEv, listenEv, connFailEv, dnsEv, nxdomainEv, namedConnectEv, dnsRefusedEv} {
		if n := testing.AllocsPerRun(100, func() { buf = AppendJSON(buf[:0], &ev) }); n != 0 {
			t.Errorf("AppendJSON(%s) allocates %v", ev.Type, n)
		}
		if n := testing.AllocsPerRun(100, func() { buf = AppendText(buf[:0], &ev) }); n != 0 {
			t.Errorf("AppendText(%s) allocates %v", ev.Type, n)
		}
	}
}

// TestKindFormats: every kind of event has its own fields' formats.
func TestKindFormats(t *testing.T) {
	for _, k := range event.All {
		if int(k) >= len(kindFormats) || kindFormats[k].json == nil || kindFormats[k].text == nil {
			t.Errorf("%s: no JSON or text format", k)
		}
	}
}

func TestWriter(t *testing.T) {
	var out, warn bytes.Buffer
	w := NewWriter(&out, Text, &warn)
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []event.Event{connectEv, lostEv} {
		if err := w.Write(&ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 2 || !strings.HasPrefix(out.String(), "TIME") {
		t.Errorf("text output: %q", out.String())
	}
	if !strings.Contains(warn.String(), "12 events lost") {
		t.Errorf("lost warning went to %q, want stderr", warn.String())
	}

	out.Reset()
	w = NewWriter(&out, JSON, &warn)
	w.WriteHeader()
	w.Write(&lostEv)
	w.Flush()
	if got := out.String(); got != `{"ts":"2026-11-25T10:00:00.123456789Z","event":"lost","count":12,"dropped":9,"skipped":0,"evicted":3}`+"\n" {
		t.Errorf("json output: %q", got)
	}

	for in, want := range map[string]Format{"text": Text, "json": JSON, "JSON": JSON} {
		if f, err := ParseFormat(in); err != nil || f != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, f, err)
		}
	}
	if _, err := ParseFormat("yaml"); err == nil {
		t.Error("ParseFormat(yaml) accepted")
	}
}

func TestExplanations(t *testing.T) {
	v4 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	cases := []struct {
		ev   event.Event
		want string
	}{
		// A REJECT on this host: its reset or ICMP error, and the SYN dropped.
		{event.Event{Type: event.ConnectFail, Errno: 111, RAddr: v4("10.0.0.7"), RPort: 5432, DropsWatched: true, Drops: 1,
			DropReason: "NETFILTER_DROP"},
			"ECONNREFUSED: a firewall rule on this host rejected the connection to 10.0.0.7:5432 (netfilter dropped the SYN, NETFILTER_DROP, and answered in the peer's place)"},
		{event.Event{Type: event.ConnectFail, Errno: 113, RAddr: v4("10.0.0.7"), RPort: 5432, DropsWatched: true, Drops: 1,
			DropReason: "NETFILTER_DROP"},
			"EHOSTUNREACH: a firewall rule on this host rejected the connection to 10.0.0.7:5432"},
		{event.Event{Type: event.ConnectFail, RAddr: v4("10.0.0.7"), RPort: 5432, DropsWatched: true, Drops: 1,
			DropReason: "NETFILTER_DROP"},
			"aborted: the application closed the socket before the handshake completed, after this host dropped its SYN (NETFILTER_DROP): a firewall rule here (a REJECT's ICMP error reaches the application only through SO_ERROR)"},
		// An ICMP error, and who sent it (fentry and kprobe modes).
		{event.Event{Type: event.ConnectFail, Errno: 113, RAddr: v4("198.18.2.9"), RPort: 80, ICMPWatched: true,
			ICMPFrom: v4("198.18.0.254"), ICMPType: 3, ICMPCode: 1},
			"EHOSTUNREACH: 198.18.0.254 answered the SYN to 198.18.2.9:80 with ICMP host unreachable (type 3, code 1)"},
		{event.Event{Type: event.ConnectFail, Errno: 101, RAddr: v4("2001:db8:2::9"), RPort: 80, ICMPWatched: true,
			ICMPFrom: v4("2001:db8::fe"), ICMPType: 1, ICMPCode: 0},
			"ENETUNREACH: 2001:db8::fe answered the SYN to [2001:db8:2::9]:80 with ICMPv6 no route to destination (type 1, code 0)"},
		// A firewall's rejection, said as one: administratively
		// prohibited, or the peer itself saying it is unreachable.
		{event.Event{Type: event.ConnectFail, Errno: 113, RAddr: v4("198.18.2.9"), RPort: 80, ICMPWatched: true,
			ICMPFrom: v4("198.18.0.254"), ICMPType: 3, ICMPCode: 13},
			"EHOSTUNREACH: 198.18.0.254 answered the SYN to 198.18.2.9:80 with ICMP communication administratively prohibited (type 3, code 13): a firewall on the path rejected the connection"},
		{event.Event{Type: event.ConnectFail, Errno: 113, RAddr: v4("2001:db8:2::9"), RPort: 80, ICMPWatched: true,
			ICMPFrom: v4("2001:db8:2::9"), ICMPType: 1, ICMPCode: 1},
			"EHOSTUNREACH: 2001:db8:2::9 answered the SYN to [2001:db8:2::9]:80 with ICMPv6 communication administratively prohibited (type 1, code 1): a firewall at the peer rejected the connection"},
		{event.Event{Type: event.ConnectFail, Errno: 111, RAddr: v4("198.18.2.9"), RPort: 80, ICMPWatched: true,
			ICMPFrom: v4("198.18.2.9"), ICMPType: 3, ICMPCode: 3},
			"ECONNREFUSED: 198.18.2.9 answered the SYN to 198.18.2.9:80 with ICMP port unreachable (type 3, code 3): the peer itself answered, so it is up and a firewall there rejected the connection (REJECT)"},
		{event.Event{Type: event.ConnectFail, RAddr: v4("198.18.2.9"), RPort: 80, ICMPWatched: true,
			ICMPFrom: v4("198.18.0.254"), ICMPType: 3, ICMPCode: 13},
			"aborted: the application closed the socket before the handshake completed; ICMP communication administratively prohibited (type 3, code 13) came from 198.18.0.254 while connect() held the socket: a soft error, which only SO_ERROR returns"},
		// A UDP flow's ICMP error.
		{event.Event{Type: event.ConnectFail, Proto: event.ProtoUDP, Errno: 111, ICMPWatched: true, NetNS: 1, RAddr: v4("127.0.0.1"), RPort: 53, ListenersNetNS: 1,
			Listeners: []event.Holder{{LAddr: v4("127.0.0.53"), LPort: 53, State: "UNCONN", Procs: []sockets.Proc{{PID: 7, Comm: "resolved"}}}}},
			"ECONNREFUSED: nothing listens on 127.0.0.1:53; 127.0.0.53:53 is held by 7 resolved (UNCONN): the service is bound to another address; ICMP port unreachable came back"},
		{event.Event{Type: event.ConnectFail, Proto: event.ProtoUDP, Errno: 111, ICMPWatched: true, RAddr: v4("198.18.0.2"), RPort: 53},
			"ECONNREFUSED: nothing is bound to 198.18.0.2:53 (or a firewall rejected the datagrams); ICMP port unreachable came back"},
		{event.Event{Type: event.ConnectFail, Proto: event.ProtoUDP, Errno: 90, RAddr: v4("198.18.0.2"), RPort: 443, ICMPWatched: true},
			"EMSGSIZE: a datagram to 198.18.0.2:443 was larger than the path takes (ICMP fragmentation needed)"},
		// Who sent it, where UDP's error handlers are hooked.
		{event.Event{Type: event.ConnectFail, Proto: event.ProtoUDP, Errno: 111, ICMPWatched: true, RAddr: v4("198.18.0.2"), RPort: 53,
			ICMPFrom: v4("198.18.0.2"), ICMPType: 3, ICMPCode: 3},
			"ECONNREFUSED: nothing is bound to 198.18.0.2:53 (or a firewall rejected the datagrams); 198.18.0.2 answered with ICMP port unreachable (type 3, code 3)"},
		{event.Event{Type: event.ConnectFail, Proto: event.ProtoUDP, Errno: 113, ICMPWatched: true, RAddr: v4("198.18.2.9"), RPort: 53,
			ICMPFrom: v4("198.18.0.254"), ICMPType: 3, ICMPCode: 1},
			"EHOSTUNREACH: 198.18.2.9 cannot be reached: 198.18.0.254 answered with ICMP host unreachable (type 3, code 1)"},
		{event.Event{Type: event.ConnectFail, Proto: event.ProtoUDP, Errno: 90, RAddr: v4("198.18.2.9"), RPort: 443, ICMPWatched: true,
			ICMPFrom: v4("198.18.0.254"), ICMPType: 3, ICMPCode: 4},
			"EMSGSIZE: a datagram to 198.18.2.9:443 was larger than the path takes: 198.18.0.254 answered with ICMP fragmentation needed (type 3, code 4)"},
		{event.Event{Type: event.ConnectFail, Proto: event.ProtoUDP, Errno: 71, RAddr: v4("198.18.2.9"), RPort: 443, ICMPWatched: true,
			ICMPFrom: v4("198.18.0.254"), ICMPType: 12, ICMPCode: 0},
			"EPROTO: the datagrams to 198.18.2.9:443 got an answer from 198.18.0.254: ICMP parameter problem (type 12, code 0)"},
		// A UDP send that failed.
		{event.Event{Type: event.ConnectFail, Proto: event.ProtoUDP, Errno: 1, RAddr: v4("198.18.0.2"), RPort: 53, Drops: 1, DropReason: "NETFILTER_DROP"},
			"EPERM: sending to 198.18.0.2:53 was refused by a firewall rule on this host, which dropped the datagram (NETFILTER_DROP)"},
		{event.Event{Type: event.ConnectFail, Proto: event.ProtoUDP, Errno: 101, RAddr: v4("198.18.7.7"), RPort: 53},
			"ENETUNREACH: 198.18.7.7 cannot be reached: no route here"},
		// Timed out: how many SYNs, how long, and what this host dropped.
		// A listener here whose accept queue is full drops the SYNs.
		{event.Event{Type: event.ConnectFail, Errno: 110, RAddr: v4("127.0.0.1"), RPort: 8095, Latency: 3 * time.Second,
			Retransmits: 1, DropsWatched: true, ListenersNetNS: 1, ListenOverflows: 18, OverflowsKnown: true, Listeners: []event.Holder{
				{LAddr: v4("0.0.0.0"), LPort: 8095, State: "LISTEN", Procs: []sockets.Proc{{PID: 7, Comm: "slow"}}, ProcsSeen: true, Queued: 1, Backlog: 0}}},
			"ETIMEDOUT: no answer from 127.0.0.1:8095 to 2 SYNs over 3.000s; the listener on 0.0.0.0:8095, 7 slow, has a full accept queue (1 waiting, backlog 0): it is not accepting, so this host drops the SYNs (ListenOverflows 18 in its network namespace)"},
		// One with room: the general line.
		{event.Event{Type: event.ConnectFail, Errno: 110, RAddr: v4("127.0.0.1"), RPort: 8095, Latency: 3 * time.Second,
			Retransmits: 1, DropsWatched: true, ListenersNetNS: 1, Listeners: []event.Holder{
				{LAddr: v4("0.0.0.0"), LPort: 8095, State: "LISTEN", Procs: []sockets.Proc{{PID: 7, Comm: "slow"}}, ProcsSeen: true, Queued: 1, Backlog: 4}}},
			"ETIMEDOUT: no answer from 127.0.0.1:8095 to 2 SYNs over 3.000s; this host dropped none of them: a firewall on the path or at the peer, or the peer is down"},
		{event.Event{Type: event.ConnectFail, Errno: 110, RAddr: v4("10.0.0.7"), RPort: 5432, Latency: time.Second},
			"ETIMEDOUT: no answer from 10.0.0.7:5432 to 1 SYN over 1.000s (host down or packets dropped; drops on this host are not watched here)"},
		{event.Event{Type: event.ConnectFail, Errno: 110, RAddr: v4("10.0.0.7"), RPort: 5432, Latency: 3 * time.Second,
			Retransmits: 1, DropsWatched: true},
			"ETIMEDOUT: no answer from 10.0.0.7:5432 to 2 SYNs over 3.000s; this host dropped none of them: a firewall on the path or at the peer, or the peer is down"},
		{event.Event{Type: event.ConnectFail, Errno: 110, RAddr: v4("10.0.0.7"), RPort: 5432, Latency: 3 * time.Second,
			Retransmits: 1, DropsWatched: true, Drops: 2, DropReason: "NETFILTER_DROP", DropInbound: true, DropIfindex: 4, DropDevice: "eth\x1b0"},
			`ETIMEDOUT: no answer from 10.0.0.7:5432 to 2 SYNs over 3.000s; this host dropped the answers (NETFILTER_DROP on eth\x1b0): a firewall rule here (nftables, iptables)`},
		{event.Event{Type: event.ConnectFail, Errno: 110, RAddr: v4("10.0.0.7"), RPort: 5432, Latency: 3 * time.Second,
			Retransmits: 1, DropsWatched: true, Drops: 1, DropReason: "QDISC_DROP", DropIfindex: 4},
			"ETIMEDOUT: no answer from 10.0.0.7:5432 to 2 SYNs over 3.000s; this host dropped them (QDISC_DROP on interface 4)"},
		{event.Event{Type: event.ConnectFail, Errno: 113, RAddr: v4("10.0.0.9"), DropsWatched: true, Drops: 3,
			DropReason: "NEIGH_FAILED", DropIfindex: 4, DropDevice: "veth0"},
			"EHOSTUNREACH: no ARP/NDP answer from the next hop to 10.0.0.9 on veth0 (NEIGH_FAILED): no host has that address on the link"},
		{event.Event{Type: event.ConnectFail, Errno: 113, RAddr: v4("10.0.0.9"), DropsWatched: true},
			"EHOSTUNREACH: 10.0.0.9 cannot be reached: an ICMP error answered the SYN (a router with no way there, or a firewall's REJECT on the path or at the peer), or a route here says unreachable; this host dropped nothing"},
		{event.Event{Type: event.ConnectFail, Errno: 0}, "aborted: the application closed the socket before the handshake completed"},
		{event.Event{Type: event.ConnectFail, Errno: 99, RAddr: v4("10.0.0.7"), RPort: 80},
			"EADDRNOTAVAIL: no free local port to reach 10.0.0.7:80 (ephemeral ports exhausted)"},
		{event.Event{Type: event.ConnectFail, Errno: 101, RAddr: v4("224.0.0.1"), RPort: 80},
			"ENETUNREACH: 224.0.0.1 is a multicast address: TCP connects to one host only"},
		{event.Event{Type: event.ConnectFail, Errno: 101, RAddr: v4("ff02::1"), RPort: 80},
			"ENETUNREACH: ff02::1 is a multicast address: TCP connects to one host only"},
		{event.Event{Type: event.ConnectFail, Errno: 101, RAddr: v4("255.255.255.255"), RPort: 80},
			"ENETUNREACH: 255.255.255.255 is the broadcast address: TCP connects to one host only"},
		{event.Event{Type: event.ConnectFail, Errno: 113, RAddr: v4("10.0.0.7")},
			"EHOSTUNREACH: 10.0.0.7 cannot be reached: an ICMP error answered the SYN (a router with no way there, or a firewall's REJECT on the path or at the peer), or a route here says unreachable"},
		// Refused by an address of this host: who listens on the port.
		{event.Event{Type: event.ConnectFail, Errno: 111, NetNS: 1, RAddr: v4("::1"), RPort: 80, ListenersNetNS: 1,
			Listeners: []event.Holder{{LAddr: v4("0.0.0.0"), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 7, Comm: "httpd"}}}}},
			"ECONNREFUSED: nothing listens on [::1]:80; 0.0.0.0:80 is held by 7 httpd (LISTEN): the service takes IPv4 only"},
		{event.Event{Type: event.ConnectFail, Errno: 111, NetNS: 1, RAddr: v4("127.0.0.1"), RPort: 80, ListenersNetNS: 1,
			Listeners: []event.Holder{{LAddr: netip.IPv6Unspecified(), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 7, Comm: "httpd"}}}}},
			"ECONNREFUSED: nothing listens on 127.0.0.1:80; [::]:80 is held by 7 httpd (LISTEN): the service takes IPv6 only (IPV6_V6ONLY)"},
		{event.Event{Type: event.ConnectFail, Errno: 111, NetNS: 1, RAddr: v4("198.18.0.2"), RPort: 80, ListenersNetNS: 2,
			Listeners: []event.Holder{{LAddr: v4("127.0.0.1"), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 7, Comm: "httpd"}, {PID: 8, Comm: "httpd"}}}}},
			"ECONNREFUSED: nothing listens on 198.18.0.2:80 (an address of network namespace 2); 127.0.0.1:80 is held by 7 httpd, 8 httpd (LISTEN): the service is bound to another address"},
		{event.Event{Type: event.ConnectFail, Errno: 111, NetNS: 1, RAddr: v4("127.0.0.1"), RPort: 80, ListenersNetNS: 1, Listeners: []event.Holder{}},
			"ECONNREFUSED: nothing listens on 127.0.0.1:80, nor on any other address of port 80"},
		{event.Event{Type: event.ConnectFail, Errno: 111, NetNS: 1, RAddr: v4("127.0.0.1"), RPort: 80, ListenersNetNS: 1,
			Listeners: []event.Holder{{LAddr: v4("0.0.0.0"), LPort: 80, State: "LISTEN", ProcsSeen: true}}},
			"ECONNREFUSED: nothing listens on 127.0.0.1:80; 0.0.0.0:80 is held by no process (LISTEN), which takes this address, yet the connection was refused: a firewall rule (REJECT), or a full accept queue with net.ipv4.tcp_abort_on_overflow=1"},
		// A listener that came after the refusal is named, not blamed.
		{event.Event{Type: event.ConnectFail, Errno: 111, NetNS: 1, RAddr: v4("::1"), RPort: 80, ListenersNetNS: 1, ListenAfter: 40 * time.Millisecond,
			Listeners: []event.Holder{{LAddr: v4("0.0.0.0"), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 7, Comm: "httpd"}}}}},
			"ECONNREFUSED: nothing listened on [::1]:80 then; a socket started listening on port 80 40.000ms after the refusal; now 0.0.0.0:80 is held by 7 httpd (LISTEN)"},
		// No process found, where some could not be seen: not "none".
		{event.Event{Type: event.BindFail, Errno: 98, LAddr: v4("127.0.0.1"), LPort: 80, Holders: []event.Holder{
			{LAddr: v4("127.0.0.1"), LPort: 80, State: "LISTEN"}}},
			`EADDRINUSE: 127.0.0.1:80 is held by a process that could not be seen (LISTEN)`},
		// One process's SO_REUSEPORT group is named once.
		{event.Event{Type: event.BindFail, Errno: 98, Proto: event.ProtoTCP, LAddr: v4("127.0.0.1"), LPort: 80, Holders: []event.Holder{
			{LAddr: v4("127.0.0.1"), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 7582, Comm: "rp_hold"}}, ReusePort: true, ReusePortKnown: true},
			{LAddr: v4("127.0.0.1"), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 7582, Comm: "rp_hold"}}, ReusePort: true, ReusePortKnown: true},
			{LAddr: v4("127.0.0.1"), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 7583, Comm: "rp_hold"}, {PID: 7584, Comm: "rp_hold"}}, ReusePort: true, ReusePortKnown: true},
			{LAddr: v4("127.0.0.1"), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 7583, Comm: "rp_hold"}, {PID: 7584, Comm: "rp_hold"}}, ReusePort: true, ReusePortKnown: true}}},
			`EADDRINUSE: 127.0.0.1:80 is held by 7582 rp_hold (LISTEN, 2 sockets); 7583 rp_hold, 7584 rp_hold (LISTEN, 2 sockets in 2 processes); 4 sockets share it with SO_REUSEPORT, which this socket did not set`},
		{event.Event{Type: event.BindFail, Errno: 13, LAddr: v4("0.0.0.0"), LPort: 80, PortStart: 1024},
			"EACCES: ports below 1024 (net.ipv4.ip_unprivileged_port_start here) need root or CAP_NET_BIND_SERVICE (binding 0.0.0.0:80)"},
		{event.Event{Type: event.BindFail, Errno: 13, LAddr: v4("0.0.0.0"), LPort: 1500, PortStart: 2000},
			"EACCES: ports below 2000 (net.ipv4.ip_unprivileged_port_start here) need root or CAP_NET_BIND_SERVICE (binding 0.0.0.0:1500)"},
		{event.Event{Type: event.BindFail, Errno: 13, LAddr: v4("0.0.0.0"), LPort: 8080, PortStart: 1024},
			"EACCES: binding 0.0.0.0:8080 was refused by local policy (a security module or a cgroup's BPF program)"},
		{event.Event{Type: event.BindFail, Errno: 99, LAddr: v4("192.0.2.1"), LPort: 80},
			"EADDRNOTAVAIL: 192.0.2.1 is not an address of this host"},
		{event.Event{Type: event.BindFail, Errno: 98, LAddr: v4("127.0.0.1"), LPort: 80},
			"EADDRINUSE: 127.0.0.1:80 is in use (the holder has gone or could not be seen)"},
		{event.Event{Type: event.BindFail, Errno: 98, LAddr: v4("127.0.0.1"), LPort: 80, Holders: []event.Holder{
			{LAddr: v4("0.0.0.0"), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 1, Comm: "a"}}, ReusePort: true, ReusePortKnown: true},
			{LAddr: v4("0.0.0.0"), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 2, Comm: "\x1b[2Jb"}}, ReusePort: true, ReusePortKnown: true}}},
			`EADDRINUSE: 127.0.0.1:80 is held by 1 a (0.0.0.0:80 LISTEN); 2 \x1b[2Jb (0.0.0.0:80 LISTEN); 2 sockets share it with SO_REUSEPORT`},
		// Why the holders keep it out, from both sides' options.
		{event.Event{Type: event.BindFail, Errno: 98, Proto: event.ProtoTCP, LAddr: v4("127.0.0.1"), LPort: 80, Holders: []event.Holder{
			{LAddr: v4("127.0.0.1"), LPort: 80, State: "TIME_WAIT", Expires: 58700 * time.Millisecond},
			{LAddr: v4("127.0.0.1"), LPort: 80, State: "TIME_WAIT", Expires: 3 * time.Second}}},
			`EADDRINUSE: 127.0.0.1:80 is held only by 2 connections in TIME_WAIT, for up to 59.000s more: SO_REUSEADDR on this socket lets it bind now`},
		{event.Event{Type: event.BindFail, Errno: 98, Proto: event.ProtoTCP, LAddr: v4("127.0.0.1"), LPort: 80, Holders: []event.Holder{
			{LAddr: v4("127.0.0.1"), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 1, Comm: "a"}}, ReusePort: true, ReusePortKnown: true}}},
			`EADDRINUSE: 127.0.0.1:80 is held by 1 a (LISTEN); it has SO_REUSEPORT, which this socket did not set`},
		{event.Event{Type: event.BindFail, Errno: 98, Proto: event.ProtoTCP, UID: 65534, ReusePort: true, LAddr: v4("127.0.0.1"), LPort: 80, Holders: []event.Holder{
			{LAddr: v4("127.0.0.1"), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 1, Comm: "a"}}, ReusePort: true, ReusePortKnown: true}}},
			`EADDRINUSE: 127.0.0.1:80 is held by 1 a (LISTEN); it has SO_REUSEPORT; this socket set it too, but runs as uid 65534 and the group belongs to uid 0`},
		{event.Event{Type: event.BindFail, Errno: 98, Proto: event.ProtoTCP, LAddr: v4("127.0.0.1"), LPort: 80, Holders: []event.Holder{
			{LAddr: netip.IPv6Unspecified(), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 1, Comm: "a"}}, ReusePortKnown: true}}},
			`EADDRINUSE: 127.0.0.1:80 is held by 1 a ([::]:80 LISTEN); [::]:80 takes IPv4 too (IPV6_V6ONLY off)`},
		{event.Event{Type: event.BindFail, Errno: 98, Proto: event.ProtoTCP, LAddr: netip.IPv6Unspecified(), LPort: 80, Holders: []event.Holder{
			{LAddr: v4("0.0.0.0"), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 1, Comm: "a"}}, ReusePortKnown: true}}},
			`EADDRINUSE: [::]:80 is held by 1 a (0.0.0.0:80 LISTEN); this socket, [::] without IPV6_V6ONLY, takes IPv4 too: with IPV6_V6ONLY it would share the port`},
		// One socket that forked processes share is not SO_REUSEPORT.
		{event.Event{Type: event.BindFail, Errno: 98, LAddr: v4("0.0.0.0"), LPort: 80, Holders: []event.Holder{
			{LAddr: v4("0.0.0.0"), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 1, Comm: "nginx"}, {PID: 2, Comm: "nginx"}, {PID: 3, Comm: "nginx"}}}}},
			`EADDRINUSE: 0.0.0.0:80 is held by 1 nginx, 2 nginx, 3 nginx (LISTEN, one socket in 3 processes)`},
		// Two sockets without SO_REUSEPORT (v4 and v6 wildcards) are just two.
		{event.Event{Type: event.BindFail, Errno: 98, LAddr: v4("127.0.0.1"), LPort: 80, Holders: []event.Holder{
			{LAddr: v4("0.0.0.0"), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 1, Comm: "a"}}, ReusePortKnown: true},
			{LAddr: netip.IPv6Unspecified(), LPort: 80, State: "LISTEN", Procs: []sockets.Proc{{PID: 1, Comm: "a"}}, ReusePortKnown: true}}},
			`EADDRINUSE: 127.0.0.1:80 is held by 1 a (0.0.0.0:80 LISTEN); 1 a ([::]:80 LISTEN)`},
		{event.Event{Type: event.BindFail, Errno: 98, LAddr: v4("127.0.0.1"), LPort: 80, Holders: []event.Holder{}, HoldersError: "sock_diag tcp: operation not permitted"},
			"EADDRINUSE: 127.0.0.1:80 is in use; who holds it is unknown: sock_diag tcp: operation not permitted"},
	}
	for _, tc := range cases {
		got := string(appendExplanation(nil, &tc.ev))
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
		// SO_REUSEPORT only where every socket says so.
		if strings.Contains(got, "SO_REUSEPORT") != strings.Contains(tc.want, "SO_REUSEPORT") {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

func TestCloseExplanations(t *testing.T) {
	for _, tc := range []struct {
		ev   event.Event
		want string
	}{
		{event.Event{Reason: event.ReasonResetIn, Idle: 3 * time.Millisecond, IdleKnown: true},
			"reset by the peer after 3.000ms without a packet from it"},
		{event.Event{Reason: event.ReasonResetIn}, "reset by the peer"},
		// The peer was a listener here that never accepted it.
		{event.Event{Reason: event.ReasonResetIn, Idle: 20 * time.Second, IdleKnown: true, PeerUnaccepted: true},
			"reset by the peer, a listener on this host that never accepted the connection: it waited in the accept queue until the listener closed (a full or unserved accept queue)"},
		// Within the tick of its last packet: no silence to name.
		{event.Event{Reason: event.ReasonResetIn, IdleKnown: true}, "reset by the peer"},
		{event.Event{Reason: event.ReasonResetOut, Idle: 1500 * time.Millisecond, IdleKnown: true, Linger0: true},
			"reset by this side after 1.500s without a packet from the peer: SO_LINGER 0 at close()"},
		{event.Event{Reason: event.ReasonResetOut, Unread: 100},
			"reset by this side: closed with 100 bytes unread"},
		{event.Event{Reason: event.ReasonTimeout, Idle: 1400 * time.Millisecond, IdleKnown: true, Retransmits: 4},
			"timed out after 1.400s without a packet from the peer: 4 segments sent again went unanswered"},
	} {
		tc.ev.Type = event.Close
		if got := string(appendCloseExplanation(nil, &tc.ev)); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
	if explained(&finEv) {
		t.Error("an orderly close is explained")
	}
}

// TestNoSocketExplained: a drop of datagrams to a port nothing was bound
// to, by what the lookup of that port found.
func TestNoSocketExplained(t *testing.T) {
	bound := func(addr string) []event.Holder {
		return []event.Holder{{LAddr: netip.MustParseAddr(addr), LPort: 53, State: "UNCONN", Procs: []sockets.Proc{{PID: 7, Comm: "dnsmasq"}}, ProcsSeen: true}}
	}
	for _, tc := range []struct {
		dest      string
		listeners []event.Holder
		want      string
	}{
		{"198.18.0.2", nil, "nothing is bound to 198.18.0.2:53; the sender gets ICMP port unreachable"},
		{"198.18.0.2", []event.Holder{}, "nothing is bound to 198.18.0.2:53, nor to any other address of port 53; the sender gets ICMP port unreachable"},
		{"::1", bound("127.0.0.1"), "nothing is bound to [::1]:53; 127.0.0.1:53 is held by 7 dnsmasq (UNCONN): the service takes IPv4 only; the sender gets ICMP port unreachable"},
		{"127.0.0.1", bound("::1"), "nothing is bound to 127.0.0.1:53; [::1]:53 is held by 7 dnsmasq (UNCONN): the service takes IPv6 only (IPV6_V6ONLY); the sender gets ICMP port unreachable"},
		// Bound after the drop, while the lookup ran.
		{"127.0.0.1", bound("0.0.0.0"), "nothing is bound to 127.0.0.1:53; 0.0.0.0:53 is held by 7 dnsmasq (UNCONN), which takes this address: bound since; the sender gets ICMP port unreachable"},
	} {
		ev := event.Event{Type: event.Drop, Proto: event.ProtoUDP, DropReason: "NO_SOCKET", Drops: 1,
			LAddr: netip.MustParseAddr(tc.dest), LPort: 53, Listeners: tc.listeners}
		if got := string(appendDropExplanation(nil, &ev)); got != tc.want {
			t.Errorf("%s with %v:\n got %q\nwant %q", tc.dest, tc.listeners, got, tc.want)
		}
	}
}
