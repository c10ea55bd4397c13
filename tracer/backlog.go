// SPDX-License-Identifier: Apache-2.0

package tracer

// backlog holds decoded events back, in the order they came, while the
// oldest waits for its holder lookup (holders.go); the reader goes on
// reading the ring meanwhile. Empty nearly always: events then go
// straight from the ring to the sink.
type backlog struct {
	evs        []pending // a ring of slots
	head, size int
}

// backlogMax bounds the events held back (32 MB at most, 450 ms of a
// full-rate storm here; a lookup under such a storm takes 15-150 ms with
// 96,000 files open on the host): past it the oldest goes out without
// its lookup's answer (Tracer.release). The memory is given back once
// the backlog empties.
const backlogMax = 1 << 16

// backlogKeep is the size of backlog kept when it empties.
const backlogKeep = 1024

func (b *backlog) empty() bool { return b.size == 0 }
func (b *backlog) full() bool  { return b.size == backlogMax }

// push returns the slot after the newest, for the caller to fill.
func (b *backlog) push() *pending {
	if b.size == len(b.evs) {
		grown := make([]pending, max(64, 2*len(b.evs)))
		for i := range b.size {
			grown[i] = b.evs[(b.head+i)%len(b.evs)]
		}
		b.evs, b.head = grown, 0
	}
	b.size++
	return &b.evs[(b.head+b.size-1)%len(b.evs)]
}

// unpush forgets the newest slot, which push handed out unfilled.
func (b *backlog) unpush() {
	b.evs[(b.head+b.size-1)%len(b.evs)] = pending{}
	b.size--
}

// front is the oldest event.
func (b *backlog) front() *pending { return &b.evs[b.head] }

// pop forgets the oldest event.
func (b *backlog) pop() {
	b.evs[b.head] = pending{} // drop its holders
	b.head = (b.head + 1) % len(b.evs)
	b.size--
	if b.size == 0 && len(b.evs) > backlogKeep {
		b.evs, b.head = nil, 0
	}
}
