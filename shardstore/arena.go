package shardstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"github.com/recoverd/recoverd/seqno"
)

// arenaChunk is the size of the chunks an arena hands out records from:
// reading the op log allocates once per chunk, not once per op.
const arenaChunk = 64 << 10

// arena hands out byte slices from shared chunks. A slice handed out is
// never written again by the arena (a new chunk is taken when one is
// full), so strings and slices pointing into it stay immutable; a chunk
// lives as long as anything points into it.
type arena struct{ buf []byte }

// alloc returns a slice of n bytes for the caller to fill once.
func (a *arena) alloc(n int) []byte {
	if n > arenaChunk/4 {
		return make([]byte, n) // large records get their own allocation
	}
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, arenaChunk)
	}
	s := len(a.buf)
	a.buf = a.buf[:s+n]
	return a.buf[s : s+n : s+n]
}

var errShortEntry = errors.New("entry ends early")

// decodeEntry decodes an entry encoded by appendEntry that fills p
// exactly. The op's key and value point into p (no copy): p must not
// change afterwards.
func decodeEntry(p []byte, e *Op) error {
	kl, n := binary.Uvarint(p)
	if n <= 0 {
		return errShortEntry
	}
	p = p[n:]
	if kl > maxField {
		return fmt.Errorf("%w: key length %d", ErrCorrupt, kl)
	}
	if uint64(len(p)) < kl {
		return errShortEntry
	}
	key := p[:kl]
	p = p[kl:]
	s, n := binary.Varint(p)
	if n <= 0 {
		return errShortEntry
	}
	p = p[n:]
	term, n := binary.Uvarint(p)
	if n <= 0 || n >= len(p) {
		return errShortEntry
	}
	kind := p[n]
	p = p[n+1:]
	if kind > byte(OpNoOp) {
		return fmt.Errorf("%w: op kind %d", ErrCorrupt, kind)
	}
	vl, n := binary.Uvarint(p)
	if n <= 0 {
		return errShortEntry
	}
	p = p[n:]
	if vl > maxField {
		return fmt.Errorf("%w: value length %d", ErrCorrupt, vl)
	}
	if uint64(len(p)) < vl {
		return errShortEntry
	}
	if uint64(len(p)) > vl {
		return errors.New("trailing bytes")
	}
	var v []byte
	if vl > 0 {
		v = p[:vl:vl]
	}
	*e = Op{Key: unsafe.String(unsafe.SliceData(key), len(key)), SeqNo: seqno.SeqNo(s), PrimaryTerm: term, Kind: OpKind(kind), Value: v}
	return nil
}
