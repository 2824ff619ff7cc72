package shardstore

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// OpKind says whether an op indexes or deletes a document, or is a no-op
// (engine.OpKind).
type OpKind = engine.OpKind

const (
	OpIndex  = engine.OpIndex
	OpDelete = engine.OpDelete
	// OpNoOp takes a seqno and changes no document: a promoted primary
	// fills the gaps below its max seqno with no-ops (Elasticsearch's
	// fillSeqNoGaps). It has no key and no value; the op log stores and
	// replays it and the op stream carries it, but it never enters a
	// segment.
	OpNoOp = engine.OpNoOp
)

// validateOp checks an op that came from outside (a primary's op stream, a
// recovery): a seqno, a known kind, a key for an index or delete, none for
// a no-op.
func validateOp(op *Op) error {
	if op.SeqNo < 0 || op.Kind > OpNoOp {
		return fmt.Errorf("%w: op has seqno %v or kind %d", engine.ErrInvalidArgument, op.SeqNo, op.Kind)
	}
	if op.Kind == OpNoOp {
		if op.Key != "" || len(op.Value) > 0 {
			return fmt.Errorf("%w: no-op %v carries a key or a value", engine.ErrInvalidArgument, op.SeqNo)
		}
		return nil
	}
	return validateKey(op.Key)
}

// Op is one operation on a document, as logged and as stored in a segment
// (where it is the document's version: a live value or a tombstone).
type Op = engine.Op

// newer reports whether e wins over o for the same key: the higher seqno wins.
func newer(e, o *Op) bool { return e.SeqNo > o.SeqNo }

func appendEntry(b []byte, e *Op) []byte {
	b = binary.AppendUvarint(b, uint64(len(e.Key)))
	b = append(b, e.Key...)
	b = binary.AppendVarint(b, int64(e.SeqNo))
	b = binary.AppendUvarint(b, e.PrimaryTerm)
	b = append(b, byte(e.Kind))
	b = binary.AppendUvarint(b, uint64(len(e.Value)))
	return append(b, e.Value...)
}

// maxField bounds a decoded key or value length so corrupt input cannot make
// us allocate without bound.
const maxField = 64 << 20

func readEntry(r *bufio.Reader, e *Op) error {
	kl, err := binary.ReadUvarint(r)
	if err != nil {
		return err
	}
	if kl > maxField {
		return fmt.Errorf("%w: key length %d", ErrCorrupt, kl)
	}
	kb := make([]byte, kl)
	if _, err := io.ReadFull(r, kb); err != nil {
		return err
	}
	s, err := binary.ReadVarint(r)
	if err != nil {
		return err
	}
	term, err := binary.ReadUvarint(r)
	if err != nil {
		return err
	}
	kind, err := r.ReadByte()
	if err != nil {
		return err
	}
	if kind > byte(OpNoOp) {
		return fmt.Errorf("%w: op kind %d", ErrCorrupt, kind)
	}
	vl, err := binary.ReadUvarint(r)
	if err != nil {
		return err
	}
	if vl > maxField {
		return fmt.Errorf("%w: value length %d", ErrCorrupt, vl)
	}
	var v []byte
	if vl > 0 {
		v = make([]byte, vl)
		if _, err := io.ReadFull(r, v); err != nil {
			return err
		}
	}
	*e = Op{Key: string(kb), SeqNo: seqno.SeqNo(s), PrimaryTerm: term, Kind: OpKind(kind), Value: v}
	return nil
}
