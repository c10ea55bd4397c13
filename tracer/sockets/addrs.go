// SPDX-License-Identifier: Apache-2.0

package sockets

import (
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HasAddr reports whether addr is one of ns's own: on one of its
// interfaces, or in the loopback range (127.0.0.0/8 answers on lo as a
// whole).
func HasAddr(ns NS, addr netip.Addr) (bool, error) {
	addr = addr.Unmap()
	if addr.IsLoopback() {
		return true, nil
	}
	h, err := handle(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return false, err
	}
	defer h.Close()
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			return true, nil
		}
	}
	return false, nil
}

// OwnerOf finds the network namespace that has addr as its own. The
// namespace first (a failing socket's, opened by way of firstPID) is
// asked first, and for a loopback address it is the only one. It returns
// the namespace's inode and the NS, open (the caller closes it); ok is
// false when no namespace here has the address.
func OwnerOf(addr netip.Addr, first uint32, firstPID uint32) (ino uint32, ns NS, ok bool) {
	if ns, ok := OpenNSByInode(first, firstPID); ok {
		if has, err := HasAddr(ns, addr); err == nil && has {
			return first, ns, true
		}
		ns.Close()
	}
	if addr.Unmap().IsLoopback() {
		return 0, NS{}, false
	}
	for ino, path := range Namespaces() {
		if ino == first {
			continue
		}
		ns, err := OpenNS(path)
		if err != nil {
			continue
		}
		if has, err := HasAddr(ns, addr); err == nil && has {
			return ino, ns, true
		}
		ns.Close()
	}
	return 0, NS{}, false
}

// LinkName is the name of ns's interface index ("veth0").
func LinkName(ns NS, index uint32) (string, error) {
	h, err := handle(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return "", err
	}
	defer h.Close()
	link, err := h.LinkByIndex(int(index))
	if err != nil {
		return "", err
	}
	return link.Attrs().Name, nil
}
