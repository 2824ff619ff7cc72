package transfer

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"

	"github.com/zeebo/blake3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// OpsSum is the digest of a run of ops as FetchOps moves them: a BLAKE3 sum
// over each op's seqno, primary term, kind, key and value, in seqno order.
// The source computes it over its op log (GetOpsDigest), the target over
// the ops it received as they streamed in; equal sums say the target
// staged and replayed exactly the source's ops, none lost, none twice,
// none changed. The zero value is not usable: NewOpsSum.
type OpsSum struct {
	h    hash.Hash
	n    int64
	from seqno.SeqNo
	buf  []byte
}

// NewOpsSum starts the sum of the ops from seqno from on.
func NewOpsSum(from seqno.SeqNo) *OpsSum {
	return &OpsSum{h: blake3.New(), from: from}
}

// From is the first seqno the sum covers.
func (s *OpsSum) From() seqno.SeqNo { return s.from }

// Ops is how many ops were added.
func (s *OpsSum) Ops() int64 { return s.n }

// Add extends the sum with ops, which follow those already added in
// seqno order.
func (s *OpsSum) Add(ops []engine.Op) {
	for i := range ops {
		op := &ops[i]
		b := s.buf[:0]
		b = binary.AppendVarint(b, int64(op.SeqNo))
		b = binary.AppendUvarint(b, op.PrimaryTerm)
		b = binary.AppendUvarint(b, uint64(op.Kind))
		b = binary.AppendUvarint(b, uint64(len(op.Key)))
		b = append(b, op.Key...)
		b = binary.AppendUvarint(b, uint64(len(op.Value)))
		s.h.Write(b)
		s.h.Write(op.Value)
		s.buf = b
	}
	s.n += int64(len(ops))
}

// Sum is the digest so far, in hex.
func (s *OpsSum) Sum() string { return hex.EncodeToString(s.raw()) }

// raw is the digest so far, as FetchOps sends it (OpBatch.ops_sum).
func (s *OpsSum) raw() []byte { return s.h.Sum(nil) }

// ErrNoOpsDigest: the source digests only content (an older version).
var ErrNoOpsDigest = errors.New("transfer: the source does not digest ops")

// GetOpsDigest asks a source for the OpsSum of its ops in r, as FetchOps
// would send them: it reads only that part of its op log. The answer's
// Seq is the source's state. seqno.ErrCompacted when the source no longer
// retains them; ErrNoOpsDigest from a source that cannot.
func GetOpsDigest(ctx context.Context, c pb.PeerServiceClient, shard engine.ShardID, r seqno.Range) (Digest, error) {
	resp, err := c.GetShardDigest(ctx, &pb.GetShardDigestRequest{
		Shard: pbconv.ShardID(shard), UpToSeqno: proto.Int64(int64(r.To)), OpsFrom: proto.Int64(int64(r.From)),
	})
	if err != nil {
		return Digest{}, fmt.Errorf("transfer: digest of the ops %v of %s: %w", r, shard, rpcerr.FromStatus(err))
	}
	if resp.OpsFrom == nil || resp.GetOpsFrom() != int64(r.From) || resp.UpToSeqno == nil || resp.GetUpToSeqno() != int64(r.To) {
		return Digest{}, fmt.Errorf("%w: asked for the ops %v of %s, it answered a digest of its content", ErrNoOpsDigest, r, shard)
	}
	return Digest{Digest: resp.Digest, HistoryUUID: resp.HistoryUuid, Seq: pbconv.StatsFromPB(resp.Seqno), UpTo: r.To}, nil
}

// opsDigest answers GetShardDigest with ops_from: the OpsSum of the ops
// from..upTo, read as sendOps reads them.
func (s *PeerServer) opsDigest(ctx context.Context, sh engine.Shard, id engine.ShardID, from int64, upTo seqno.SeqNo) (*pb.GetShardDigestResponse, error) {
	r := seqno.Range{From: seqno.SeqNo(from), To: upTo}
	if err := r.Validate(); err != nil || upTo == seqno.Unassigned {
		return nil, invalid("ops_from %d with up_to_seqno %d: a range of ops is needed (%v)", from, upTo, err)
	}
	in, err := sh.Info(ctx)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	if r.To > in.Seq.MaxSeqNo {
		return nil, status.Errorf(codes.OutOfRange, "ops up to %v asked, shard %s has seen ops up to %v only", r.To, id, in.Seq.MaxSeqNo)
	}
	sum := NewOpsSum(r.From)
	if !r.Empty() {
		err = sh.ReadOps(ctx, engine.OpsRequest{Range: r, History: in.Meta.Commit.HistoryUUID}, func(ops []engine.Op) error {
			sum.Add(ops)
			return ctx.Err()
		})
		if err != nil {
			return nil, rpcerr.ToStatus(fmt.Errorf("read ops %v of %s: %w", r, id, err))
		}
	}
	return &pb.GetShardDigestResponse{Digest: sum.Sum(), HistoryUuid: in.Meta.Commit.HistoryUUID, Seqno: pbconv.Stats(in.Seq),
		UpToSeqno: proto.Int64(int64(r.To)), OpsFrom: proto.Int64(from)}, nil
}
