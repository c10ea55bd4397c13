// SPDX-License-Identifier: Apache-2.0

package dns

import "encoding/binary"

// Streams splits DNS over TCP (RFC 7766: each message after its 2-byte
// length) into messages, per connection and direction, from the
// segments the kernel side copies: each segment's first bytes (up to
// what it copies) and its full length. A message that goes on past its
// segment is passed with what the segment holds of it (cut); the bytes
// of it in the segments after are skipped. Only connections in the
// middle of such a message are remembered, at most MaxStreams.
type Streams struct {
	rest map[streamKey]int // bytes of a message still to come
}

// MaxStreams bounds the connections remembered in the middle of a
// message; one more forgets them all (their next segments are read as
// if they began with a message, and are most likely malformed).
const MaxStreams = 4096

type streamKey struct {
	sock uint64
	out  bool
}

// NewStreams makes an empty splitter.
func NewStreams() *Streams { return &Streams{rest: make(map[streamKey]int)} }

// Split calls each with every message that begins in the segment of
// connection sock (its cookie) going out or coming in: seg is what was
// copied of it, total its length; gap: bytes before it were not seen,
// so that where a message begins is not known (the segment is skipped
// unless none was in progress). cut: the message goes on past what seg
// holds. It returns 1 when it could not follow the stream through the
// segment (a length past what was copied or cut in two, a gap in the
// middle of a message), else 0.
func (s *Streams) Split(sock uint64, out bool, seg []byte, total int, gap bool, each func(msg []byte, cut bool)) (skipped int) {
	k := streamKey{sock, out}
	pos, inMessage := s.rest[k]
	if inMessage {
		delete(s.rest, k)
		if gap {
			return 1
		}
	}
	for pos+2 <= total {
		if pos+2 > len(seg) {
			// The next message's length is past what was copied.
			return 1
		}
		n := int(binary.BigEndian.Uint16(seg[pos:]))
		end := pos + 2 + n
		each(seg[pos+2:min(end, len(seg))], end > len(seg))
		pos = end
	}
	switch {
	case pos > total:
		if len(s.rest) >= MaxStreams {
			clear(s.rest)
		}
		s.rest[k] = pos - total
	case pos < total:
		// A length cut in two by the segment's end: not followed.
		return 1
	}
	return 0
}
