// SPDX-License-Identifier: Apache-2.0

package containers

import (
	"errors"
	"fmt"
)

// Lookups is what a tracer needs of containers, with the runtimes and the
// cgroup hierarchy behind it: the cgroup an event's key names and the
// container in it, and the filter's cgroups when the tracer filters by
// cgroup or container. The key is the event's cgroup id, or on a host
// without cgroup v2 its process (ByCgroup says which).
type Lookups struct {
	resolver *Resolver    // by cgroup id; nil without cgroup v2
	byPID    *PIDResolver // by pid, when resolver is nil
	err      error        // why resolver is nil
	filter   *Filter
}

// Options are what Open looks for.
type Options struct {
	// Cgroups and Containers are the filter's: cgroup paths, and
	// container names or id prefixes. Neither: no filter.
	Cgroups, Containers []string
	// NoCgroup2 acts as on a host without cgroup v2 (for tests).
	NoCgroup2 bool
}

// Open finds the cgroup v2 hierarchy and the runtimes' state, and the
// filter's cgroups now (Filter().Start gives them, and those to come, to
// the kernel). Without cgroup v2, events are looked up by process, and
// Err says why; a filter then fails.
func Open(o Options) (*Lookups, error) {
	state := DefaultState()
	l := &Lookups{}
	l.resolver, l.err = NewResolver(state)
	if o.NoCgroup2 && l.resolver != nil {
		l.resolver.Close()
		l.resolver, l.err = nil, errors.New("cgroup v2 hidden by a test")
	}
	if l.resolver == nil {
		l.byPID = NewPIDResolver(state)
	}
	if len(o.Cgroups) == 0 && len(o.Containers) == 0 {
		return l, nil
	}
	if l.resolver == nil {
		return nil, fmt.Errorf("filtering by cgroup or container needs the cgroup v2 hierarchy: %w", l.err)
	}
	f, err := NewFilter(l.resolver, state, o.Cgroups, o.Containers)
	if err != nil {
		l.Close()
		return nil, err
	}
	l.filter = f
	return l, nil
}

// ByCgroup says the keys are cgroup ids; otherwise they are pids.
func (l *Lookups) ByCgroup() bool { return l.resolver != nil }

// Err is why events are not looked up by cgroup (nil when they are).
func (l *Lookups) Err() error { return l.err }

// Filter is the cgroup filter, or nil.
func (l *Lookups) Filter() *Filter { return l.filter }

// Cached is key's cached answer, if there is one still good.
func (l *Lookups) Cached(key uint64) (*Cgroup, bool) {
	if l.resolver != nil {
		return l.resolver.Cached(key)
	}
	return l.byPID.Cached(key)
}

// Resolve looks key up.
func (l *Lookups) Resolve(key uint64) *Cgroup {
	if l.resolver != nil {
		return l.resolver.Resolve(key)
	}
	return l.byPID.Resolve(key)
}

// Close stops the filter's watch and lets the hierarchy go.
func (l *Lookups) Close() {
	if l.filter != nil {
		l.filter.Close()
		l.filter = nil
	}
	if l.resolver != nil {
		l.resolver.Close()
		l.resolver = nil
	}
}
