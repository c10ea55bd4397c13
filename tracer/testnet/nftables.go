// SPDX-License-Identifier: Apache-2.0

package testnet

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Firewall is one nftables rule for TCP (UDP's with UDP): packets going
// out (Output) or coming in, to DPort or from SPort (whichever is set),
// dropped or, with Reject, answered by netfilter with a TCP reset (or with
// ICMP, an ICMP error: port unreachable, or Unreach's).
type Firewall struct {
	UDP          bool
	Output       bool
	DPort, SPort uint16
	Reject, ICMP bool
	// Unreach: with ICMP, an NFT_REJECT_ICMPX_* code other than port
	// unreachable (HOST_UNREACH, ADMIN_PROHIBITED).
	Unreach uint8
	// From, To: only packets from, or to, this IPv4 address.
	From, To netip.Addr
}

// Firewall adds rule f to n's own nftables ruleset (an inet table of its
// own, gone with the namespace). Through netlink: it needs no nft binary
// and works in a bare VM (nf_tables loaded).
func (n *NS) Firewall(t testing.TB, f Firewall) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(n.h)))
	if err != nil {
		t.Fatalf("%s: nftables: %v", n.Name, err)
	}
	table := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "conntrace_test"})
	hook := nftables.ChainHookInput
	if f.Output {
		hook = nftables.ChainHookOutput
	}
	offset, port := uint32(0), f.SPort
	if f.DPort != 0 {
		offset, port = 2, f.DPort
	}
	// A chain per hook: a namespace may have rules on both.
	name := "input"
	if f.Output {
		name = "output"
	}
	chain := c.AddChain(&nftables.Chain{Name: name, Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: hook, Priority: nftables.ChainPriorityFilter})
	var proto byte = unix.IPPROTO_TCP
	if f.UDP {
		proto = unix.IPPROTO_UDP
	}
	var verdict expr.Any = &expr.Verdict{Kind: expr.VerdictDrop}
	switch {
	case f.Reject && f.ICMP && f.Unreach != 0:
		verdict = &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: f.Unreach}
	case f.Reject && f.ICMP:
		verdict = &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}
	case f.Reject:
		verdict = &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}
	}
	var from []expr.Any
	for _, a := range []struct {
		addr   netip.Addr
		offset uint32
	}{{f.From, 12}, {f.To, 16}} {
		if a.addr.Is4() {
			from = append(from,
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: a.offset, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.addr.AsSlice()})
		}
	}
	c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: append(from,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: offset, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
		verdict,
	)})
	if err := c.Flush(); err != nil {
		t.Fatalf("%s: add nftables rule %+v: %v (is nf_tables available?)", n.Name, f, err)
	}
}
