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
}

// NameGrace is how long a name outlives its TTL.
const NameGrace = 10 * time.Minute

// DefaultMaxNames bounds the cache: 9.1 MB of heap full (TestNamesMemory:
// 100,000 addresses, 4 for each 45-byte name).
const DefaultMaxNames = 100_000

type nameKey struct {
	netns uint32
	addr  netip.Addr
}

type nameEntry struct {
	name    string
	expires uint64
}

// NewNames makes a cache of at most max addresses.
func NewNames(max int) *Names {
	return &Names{max: max, entries: make(map[nameKey]nameEntry)}
}

// Len is the number of addresses named.
func (n *Names) Len() int { return len(n.entries) }

// Add names the answers' addresses in netns with name (the question's,
// its final dot dropped), as of now.
func (n *Names) Add(netns uint32, name []byte, answers []event.DNSAnswer, now uint64) {
	if len(answers) == 0 {
		return
	}
	if len(name) > 1 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	var s string
	for _, a := range answers {
		k := nameKey{netns, a.Addr.Unmap()}
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
	e, ok := n.entries[nameKey{netns, addr.Unmap()}]
	if !ok || e.expires < now {
		return ""
	}
	return e.name
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
