package pbconv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// OpBatch.packed_ops carries a batch's ops without a message per op (the
// encoding is in recoverd.proto): a client decodes a batch with no
// allocation per op.

// AppendPacked appends op to b in OpBatch.packed_ops' encoding.
func AppendPacked(b []byte, op *shardstore.Op) []byte {
	b = binary.AppendUvarint(b, uint64(len(op.Key)))
	b = append(b, op.Key...)
	b = binary.AppendVarint(b, int64(op.SeqNo))
	b = binary.AppendUvarint(b, op.PrimaryTerm)
	b = append(b, byte(OpKind(op.Kind)))
	b = binary.AppendUvarint(b, uint64(len(op.Value)))
	return append(b, op.Value...)
}

var errShortPacked = errors.New("packed ops end in the middle of an op")

// OpsFromPacked appends to out the ops packed in p, checked as OpFromPB
// checks one. The ops' keys and values point into p, not copies: p (a
// received message's bytes) must never change afterwards. A nil out is
// allocated for hint ops (the previous batch's count is a good one).
func OpsFromPacked(out []shardstore.Op, p []byte, hint int) ([]shardstore.Op, error) {
	if out == nil {
		out = make([]shardstore.Op, 0, max(hint, 16))
	}
	for len(p) > 0 {
		kl, n := binary.Uvarint(p)
		if n <= 0 || uint64(len(p)-n) < kl {
			return out, errShortPacked
		}
		key := p[n : n+int(kl)]
		p = p[n+int(kl):]
		s, n := binary.Varint(p)
		if n <= 0 {
			return out, errShortPacked
		}
		p = p[n:]
		term, n := binary.Uvarint(p)
		if n <= 0 || n >= len(p) {
			return out, errShortPacked
		}
		kind := pb.OpKind(p[n])
		p = p[n+1:]
		vl, n := binary.Uvarint(p)
		if n <= 0 || uint64(len(p)-n) < vl {
			return out, errShortPacked
		}
		var v []byte
		if vl > 0 {
			v = p[n : n+int(vl) : n+int(vl)]
		}
		p = p[n+int(vl):]
		k, err := OpKindFromPB(kind)
		if err != nil {
			return out, fmt.Errorf("op %d: %w", s, err)
		}
		if noop := k == shardstore.OpNoOp; noop != (kl == 0) {
			return out, fmt.Errorf("op %d is %v with a key of %d bytes: index and delete ops need a key, no-ops have none", s, k, kl)
		}
		out = append(out, shardstore.Op{Key: unsafe.String(unsafe.SliceData(key), len(key)), SeqNo: seqno.SeqNo(s), PrimaryTerm: term, Kind: k, Value: v})
	}
	return out, nil
}
