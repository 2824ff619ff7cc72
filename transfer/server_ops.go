package transfer

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// FetchOps implements PeerService.
func (s *PeerServer) FetchOps(req *pb.FetchOpsRequest, stream pb.PeerService_FetchOpsServer) error {
	sh, id, err := s.shard(stream.Context(), req.GetShard())
	if err != nil {
		return err
	}
	r, err := pbconv.RangeFromPB(req.GetRange())
	if err != nil {
		return invalid("ops range: %v", err)
	}
	if req.ExpectedHistoryUuid == "" {
		return invalid("expected_history_uuid is required: ops are only exchanged within one history")
	}
	batch := s.cfg.OpBatchSize
	if req.BatchSize > 0 {
		batch = min(int(req.BatchSize), maxOpBatchSize)
	}
	return s.sendOps(stream.Context(), stream, sh, id, r, opsAsk{history: req.ExpectedHistoryUuid, batchSize: batch, packed: req.Packed, sum: req.OpsSum})
}

// opsAsk is what a FetchOps request asks besides the range.
type opsAsk struct {
	history   string // the history the ops must belong to
	batchSize int    // ops per batch at most
	packed    bool   // OpBatch.packed_ops rather than a message per op
	sum       bool   // the OpsSum on the last batch, if the range is complete
}

// opSender is the part of the FetchOps server stream sendOps uses.
type opSender interface {
	Send(*pb.OpBatch) error
}

// sendOps streams the ops of r: one Info (to answer a history, range or
// compaction mismatch in words), then the engine's ReadOps batches,
// re-batched to what the client asked for, packed (OpBatch.packed_ops)
// when it asked for that. With ask.sum it hashes the ops as it sends them
// and puts their OpsSum on the last batch, when every op of r had been
// processed before they were read (r.To at most the local checkpoint):
// then the sum covers all the ops of r, not only those sent, and the
// target need not ask for GetOpsDigest, which reads them again.
func (s *PeerServer) sendOps(ctx context.Context, out opSender, sh engine.Shard, id engine.ShardID, r seqno.Range, ask opsAsk) error {
	history, batchSize, packed := ask.history, ask.batchSize, ask.packed
	in, err := sh.Info(ctx)
	if err != nil {
		return rpcerr.ToStatus(err)
	}
	st := in.Seq
	if h := in.Meta.Commit.HistoryUUID; h != history {
		return rpcerr.Statusf(ErrHistoryMismatch,
			"shard %s on this node has history %s, the request expects %s: copies of different histories never exchange ops; re-plan (a file copy is needed)",
			id, h, history)
	}
	if r.Empty() {
		return nil
	}
	if retained := in.Retained; r.From < retained.From {
		return rpcerr.Statusf(seqno.ErrCompacted,
			"ops from %v asked, shard %s retains ops from %v only: a file copy is needed", r.From, id, retained.From)
	}
	if r.To > st.MaxSeqNo {
		return status.Errorf(codes.OutOfRange, "ops up to %v asked, shard %s has seen ops up to %v only", r.To, id, st.MaxSeqNo)
	}
	// Unpacked, the messages of a batch come from slabs of opSlab ops (an
	// allocation per slab, not per op). Packed, a batch is one buffer. A
	// batch sent is never touched again (gRPC may still read a message
	// after Send, for stats): each batch takes new ones.
	const opSlab = 1024
	var sum *OpsSum
	if ask.sum && r.To <= st.LocalCheckpoint {
		sum = NewOpsSum(r.From)
	}
	var (
		n      int // ops in the batch
		ops    []*pb.Op
		slab   []pb.Op
		buf    []byte
		bytes  int
		limit  = s.throttledMessageBytes(s.cfg.OpBatchBytes)
		add    func(op *engine.Op)
		encode func() *pb.OpBatch
	)
	if packed {
		add = func(op *engine.Op) {
			if buf == nil {
				buf = make([]byte, 0, limit+4<<10)
			}
			buf = pbconv.AppendPacked(buf, op)
			bytes = len(buf)
		}
		encode = func() *pb.OpBatch { return &pb.OpBatch{PackedOps: buf} }
	} else {
		add = func(op *engine.Op) {
			if len(slab) == cap(slab) {
				slab = make([]pb.Op, 0, min(opSlab, batchSize))
			}
			slab = slab[:len(slab)+1]
			m := &slab[len(slab)-1]
			pbconv.SetOp(m, op)
			ops = append(ops, m)
			bytes += len(op.Key) + len(op.Value) + 32
		}
		encode = func() *pb.OpBatch { return &pb.OpBatch{Ops: ops} }
	}
	// flush sends the batch; the stream's last one carries opsSum.
	flush := func(opsSum []byte) error {
		b := encode()
		b.OpsSum = opsSum
		size := proto.Size(b)
		wait, err := s.cfg.Throttle.WaitN(ctx, size)
		s.c.throttleWait.Add(int64(wait))
		if err != nil {
			return err
		}
		if err := out.Send(b); err != nil {
			return err
		}
		s.c.ops.Add(int64(n))
		s.c.opBatches.Add(1)
		s.c.opWireBytes.Add(int64(size))
		n, ops, slab, buf, bytes = 0, nil, nil, nil, 0
		limit = s.throttledMessageBytes(s.cfg.OpBatchBytes) // the budget may have changed
		return nil
	}
	errSend := errors.New("send")
	var sendErr error
	err = sh.ReadOps(ctx, engine.OpsRequest{Range: r, History: history}, func(batch []engine.Op) error {
		if sum != nil {
			sum.Add(batch)
		}
		for i := range batch {
			add(&batch[i])
			if n++; n >= batchSize || bytes >= limit {
				if sendErr = flush(nil); sendErr != nil {
					return errSend
				}
			}
		}
		return ctx.Err()
	})
	if errors.Is(err, errSend) {
		if ce := ctx.Err(); ce != nil {
			return status.FromContextError(ce).Err()
		}
		return sendErr
	}
	if err != nil {
		return rpcerr.ToStatus(fmt.Errorf("read ops %v of %s: %w", r, id, err))
	}
	if n > 0 || sum != nil {
		var opsSum []byte
		if sum != nil {
			opsSum = sum.raw()
		}
		if err := flush(opsSum); err != nil {
			if ce := ctx.Err(); ce != nil {
				return status.FromContextError(ce).Err()
			}
			return err
		}
	}
	return nil
}
