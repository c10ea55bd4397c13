// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"sync"

	"github.com/conntrace/conntrace/tracer/containers"
)

// Container lookups: the cgroup behind each event, and the container in
// it. The answer is cached per cgroup, so the reader asks the cache (a
// map under a lock) and nothing else for all but a cgroup's first event;
// that one is looked up beside the reader, and the events behind it wait
// in the backlog, in order, as behind a holder lookup (holders.go).

// noCgroup2ForTest: Open acts as on a host without cgroup v2.
var noCgroup2ForTest bool

// cgroupSource answers for a key: a cgroup id (containers.Resolver), or
// on a host without cgroup v2 a pid (containers.PIDResolver).
type cgroupSource interface {
	Cached(key uint64) (*containers.Cgroup, bool)
	Resolve(key uint64) *containers.Cgroup
}

// cgroupLookupsAtOnce bounds the lookups running at a time.
const cgroupLookupsAtOnce = 4

// cgroupLookup is one lookup, running or done.
type cgroupLookup struct {
	done doneChan // closed when cg is set
	cg   *containers.Cgroup
}

type cgroupLookups struct {
	r       cgroupSource
	wake    func()
	running chan struct{}
	wg      sync.WaitGroup

	mu   sync.Mutex
	byID map[uint64]*cgroupLookup // lookups under way
}

func newCgroupLookups(r cgroupSource, wake func()) *cgroupLookups {
	return &cgroupLookups{r: r, wake: wake, running: make(chan struct{}, cgroupLookupsAtOnce), byID: map[uint64]*cgroupLookup{}}
}

// get is the key's answer from the cache, or the lookup that will give
// it. An answer due to be asked again (a container not named yet)
// is given as it is, and asked again beside: no event waits for that.
func (c *cgroupLookups) get(id uint64) (*containers.Cgroup, *cgroupLookup) {
	cg, ok := c.r.Cached(id)
	if ok {
		return cg, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l, running := c.byID[id]
	if !running {
		l = c.start(id)
	}
	if cg != nil {
		return cg, nil
	}
	return nil, l
}

// start looks id up beside the reader (c.mu held).
func (c *cgroupLookups) start(id uint64) *cgroupLookup {
	l := &cgroupLookup{done: make(doneChan)}
	c.byID[id] = l
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.running <- struct{}{}
		cg := c.r.Resolve(id)
		<-c.running
		c.mu.Lock()
		l.cg = cg
		delete(c.byID, id)
		close(l.done)
		c.mu.Unlock()
		c.wake()
	}()
	return l
}

func (c *cgroupLookups) wait() { c.wg.Wait() }
