// SPDX-License-Identifier: Apache-2.0

package dns

import (
	"net/netip"
	"time"

	"github.com/conntrace/conntrace/tracer/event"
)

// Names keeps, per network namespace, the name each address was last
// resolved from: an answer's A and AAAA records name their addresses
// with the question's name. An entry lasts its TTL plus NameGrace
// (clients keep connecting to an address after its TTL: their own
// caches, connection pools). Names never cross namespaces, so one tenant
// never sees another's. Times are the records' (CLOCK_MONOTONIC ns).
type Names struct {
	max     int
	entries map[nameKey]nameEntry
	// resolved: per namespace, the names (lower case) that resolved to
	// an address, and when they last did, for WithoutSuffix.
	resolved  map[uint32]map[string]*uint64
	nResolved int
	lower     []byte
}

// ResolvedFor is how long a name that resolved explains an NXDOMAIN of
// the same name with a suffix (WithoutSuffix).
const ResolvedFor = 10 * time.Minute

// maxResolved bounds the names that resolved kept, every namespace's.
const maxResolved = 16384

// NameGrace is how long a name outlives its TTL.
const NameGrace = 10 * time.Minute

// DefaultMaxNames bounds the cache: 10.1 MB of heap full (TestNamesMemory:
// 100,000 addresses, 4 for each 45-byte name).
const DefaultMaxNames = 100_000

// nameKey is plain memory (an IPv4 address as IPv4-mapped IPv6): hashed
// in one call.
type nameKey struct {
	addr  [16]byte
	netns uint32
}

type nameEntry struct {
	name    string
	expires uint64
}

// NewNames makes a cache of at most max addresses.
func NewNames(max int) *Names {
	return &Names{max: max, entries: make(map[nameKey]nameEntry), resolved: make(map[uint32]map[string]*uint64)}
}

// Len is the number of addresses named.
func (n *Names) Len() int { return len(n.entries) }

// Add names the answers' addresses in netns with name (the question's,
// its final dot dropped), as of now.
func (n *Names) Add(netns uint32, name []byte, answers []event.DNSAnswer, now uint64) {
	if len(answers) == 0 {
		return
	}
	n.addResolved(netns, name, now)
	if len(name) > 1 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	var s string
	for _, a := range answers {
		k := nameKey{a.Addr.As16(), netns}
		e, ok := n.entries[k]
		expires := now + uint64(time.Duration(a.TTL)*time.Second+NameGrace)
		if ok && e.name == string(name) && max(expires, e.expires)-min(expires, e.expires) < uint64(time.Second) {
			// The same name, its end moved by less than a second (a
			// name asked for again and again, its TTL counted down by
			// a cache): not written again.
			continue
		}
		if !ok && len(n.entries) >= n.max {
			n.makeRoom(now)
		}
		switch {
		case ok && e.name == string(name): // compared without a copy
		case s != "":
			e.name = s
		default:
			s = string(name)
			e.name = s
		}
		e.expires = expires
		n.entries[k] = e
	}
}

// Get is the name of addr in netns at now, or "".
func (n *Names) Get(netns uint32, addr netip.Addr, now uint64) string {
	if len(n.entries) == 0 {
		return ""
	}
	e, ok := n.entries[nameKey{addr.As16(), netns}]
	if !ok || e.expires < now {
		return ""
	}
	return e.name
}

// addResolved notes that name resolved in netns at now.
func (n *Names) addResolved(netns uint32, name []byte, now uint64) {
	n.lower = lowerASCII(n.lower[:0], name)
	byName := n.resolved[netns]
	if at, ok := byName[string(n.lower)]; ok {
		*at = now
		return
	}
	if n.nResolved >= maxResolved {
		n.forgetResolved(now)
	}
	if byName == nil {
		byName = make(map[string]*uint64)
		n.resolved[netns] = byName
	}
	at := now
	byName[string(n.lower)] = &at
	n.nResolved++
}

// forgetResolved forgets the names that resolved too long ago, or all
// of them if none did.
func (n *Names) forgetResolved(now uint64) {
	for netns, byName := range n.resolved {
		for name, at := range byName {
			if *at+uint64(ResolvedFor) < now {
				delete(byName, name)
				n.nResolved--
			}
		}
		if len(byName) == 0 {
			delete(n.resolved, netns)
		}
	}
	if n.nResolved >= maxResolved {
		clear(n.resolved)
		n.nResolved = 0
	}
}

// WithoutSuffix is, for a name that does not exist (NXDOMAIN) in netns,
// the longest name it begins with, less one or more of its last labels,
// that resolved there within ResolvedFor of now: what a search list
// appended a suffix to. nil if none did. It is name's own bytes.
func (n *Names) WithoutSuffix(netns uint32, name []byte, now uint64) []byte {
	byName := n.resolved[netns]
	if len(byName) == 0 {
		return nil
	}
	n.lower = lowerASCII(n.lower[:0], name)
	// Each dot but the final one ends a shorter name, longest first.
	for i := len(n.lower) - 2; i > 0; i-- {
		if n.lower[i] != '.' {
			continue
		}
		if at, ok := byName[string(n.lower[:i+1])]; ok && *at+uint64(ResolvedFor) >= now {
			return name[:i+1]
		}
	}
	return nil
}

// lowerASCII appends name in lower case (DNS names compare so).
func lowerASCII(dst, name []byte) []byte {
	for _, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// makeRoom forgets the expired entries, and, if that is not a tenth of
// the cache, others (the map's order: arbitrary) until it is.
func (n *Names) makeRoom(now uint64) {
	for k, e := range n.entries {
		if e.expires < now {
			delete(n.entries, k)
		}
	}
	for k := range n.entries {
		if len(n.entries) < n.max-n.max/10 {
			break
		}
		delete(n.entries, k)
	}
}
