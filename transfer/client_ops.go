package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/seqno"
)

// OpsClient is the part of pb.PeerServiceClient that FetchOps uses.
type OpsClient interface {
	FetchOps(ctx context.Context, in *pb.FetchOpsRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[pb.OpBatch], error)
}

// OpsOptions tune FetchOps; the zero value is usable.
type OpsOptions struct {
	// BatchSize asked of the source (ops per batch); 0 means its default.
	BatchSize int
	// Throttle applies to op batches received (their encoded size).
	Throttle *Throttle
	// IdleTimeout as for FetchOptions (default 30s; negative disables).
	IdleTimeout time.Duration
	// Retry as for FetchOptions (zero fields are retry.Peer's).
	Retry retry.Options
	// OnResume is called before the stream is resumed at seqno next.
	OnResume func(next seqno.SeqNo, cause error)
	// OnThrottle is called with each wait for the bandwidth budget.
	OnThrottle func(d time.Duration)
	// Unpacked asks for a message per op (as older sources send) rather
	// than packed batches: for tests of the older format.
	Unpacked bool
	// Sum asks the source for the OpsSum of each stream's ops and compares
	// it with the sum of the ops received (OpsResult.Summed, SumDiff).
	Sum bool
}

// OpsResult sums up a FetchOps call (also when it failed).
type OpsResult struct {
	Ops, Batches, WireBytes, Resumes int64
	ThrottleWait                     time.Duration
	// Last is the seqno of the last op handed to fn (seqno.Unassigned when
	// none was).
	Last seqno.SeqNo
	// Summed (with OpsOptions.Sum) says every op handed to fn came on a
	// stream whose OpsSum the source sent and this node's sum of the ops
	// received matched: fn got all the source's ops of the range, none
	// changed. A source sends no sum for a range it has not completely
	// processed, and an older source none at all; a stream cut before its
	// end has none either.
	Summed bool
	// SumDiff, when not empty, says which stream's ops had another OpsSum
	// on the source than the ops fn got: they are not the source's.
	SumDiff string
}

// fnError marks an error returned by the caller's fn: never retried.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }
func (e fnError) Unwrap() error { return e.err }

// FetchOps streams the ops of r from a source whose history must be
// historyUUID, in seqno order, and calls fn with each batch (fn may keep
// the slice). Seqnos the source never processed are absent. A stream
// broken by a transient error is resumed after the last op fn accepted;
// errors of fn end the call as they are. ErrCompacted (a file copy is
// needed) and ErrHistoryMismatch come back wrapped (errors.Is).
func FetchOps(ctx context.Context, c OpsClient, shard engine.ShardID, r seqno.Range, historyUUID string,
	fn func([]engine.Op) error, opts OpsOptions) (OpsResult, error) {
	res := OpsResult{Last: seqno.Unassigned, Summed: opts.Sum}
	if err := r.Validate(); err != nil {
		return res, fmt.Errorf("transfer: %w", err)
	}
	if historyUUID == "" {
		return res, errors.New("transfer: FetchOps needs the source's history UUID")
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = defaultIdleTimeout
	}
	retrier := retry.New(retry.Peer.With(opts.Retry))
	next := r.From
	for next <= r.To {
		before := res.Ops
		err := fetchOpsOnce(ctx, c, shard, seqno.Range{From: next, To: r.To}, historyUUID, fn, &opts, &res)
		if res.Last != seqno.Unassigned {
			next = res.Last + 1
		}
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("transfer: ops %v at %v: %w", r, next, context.Cause(ctx))
		}
		var fe fnError
		if errors.As(err, &fe) {
			return res, fe.err
		}
		if !retry.IsTransient(err) {
			return res, fmt.Errorf("transfer: ops %v at %v: %w", r, next, err)
		}
		if res.Ops > before {
			retrier.Progress()
		}
		d, ok := retrier.Next()
		if !ok {
			return res, fmt.Errorf("transfer: ops %v: giving up at %v: %w: %w", r, next, ErrRetriesExhausted, err)
		}
		res.Resumes++
		if opts.OnResume != nil {
			opts.OnResume(next, err)
		}
		if err := retry.Sleep(ctx, d); err != nil {
			return res, fmt.Errorf("transfer: ops %v at %v: %w", r, next, err)
		}
	}
	return res, nil
}

// opsAhead is how many decoded batches the receiver may hold ahead of fn:
// the next batch crosses the network and is decoded while fn applies (and
// fsyncs) the previous one.
const opsAhead = 2

// received is one batch decoded ahead of fn, or the error that ended the
// stream (after every batch received before it).
type received struct {
	ops  []engine.Op
	size int
	wait time.Duration // throttle wait before it
	err  error
	// summed: the batch carried the source's OpsSum of the stream, which
	// differed from the ops received as sumDiff says (empty: it matched).
	summed  bool
	sumDiff string
}

func fetchOpsOnce(ctx context.Context, c OpsClient, shard engine.ShardID, r seqno.Range, history string,
	fn func([]engine.Op) error, opts *OpsOptions, res *OpsResult) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := newWatchdog(opts.IdleTimeout, cancel)
	defer wd.disarm()
	wd.arm()
	st, err := c.FetchOps(sctx, &pb.FetchOpsRequest{
		Shard: pbconv.ShardID(shard), Range: pbconv.Range(r), BatchSize: uint32(max(opts.BatchSize, 0)), ExpectedHistoryUuid: history,
		Packed: !opts.Unpacked, OpsSum: opts.Sum,
	})
	wd.disarm()
	if err != nil {
		return streamErr(sctx, opts.IdleTimeout, err)
	}
	ch := make(chan received, opsAhead)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		receiveOps(sctx, st, wd, r, opts, ch, quit)
	}()
	defer func() {
		close(quit) // the receiver stops if fn ended the call
		cancel(nil)
		<-done
	}()
	// matched: the stream's ops so far had the source's sum.
	var streamOps int64
	matched := false
	defer func() {
		if streamOps > 0 && !matched {
			res.Summed = false
		}
	}()
	for b := range ch {
		if b.wait > 0 {
			res.ThrottleWait += b.wait
			if opts.OnThrottle != nil {
				opts.OnThrottle(b.wait)
			}
		}
		if b.err != nil {
			return b.err
		}
		if len(b.ops) > 0 {
			if err := fn(b.ops); err != nil {
				return fnError{err}
			}
			streamOps += int64(len(b.ops))
			matched = false
			res.Ops += int64(len(b.ops))
			res.Batches++
			res.WireBytes += int64(b.size)
			res.Last = b.ops[len(b.ops)-1].SeqNo
		}
		if b.summed {
			matched = b.sumDiff == ""
			if !matched && res.SumDiff == "" {
				res.SumDiff = b.sumDiff
			}
		}
	}
	return nil
}

// receiveOps receives, decodes, checks and throttles the batches of st
// into ch, ahead of fn, until the stream ends (its error last in ch) or
// the consumer quits.
func receiveOps(sctx context.Context, st grpc.ServerStreamingClient[pb.OpBatch], wd *watchdog, r seqno.Range, opts *OpsOptions,
	ch chan<- received, quit <-chan struct{}) {
	put := func(b received) bool {
		select {
		case ch <- b:
			return true
		case <-quit:
			return false
		}
	}
	next, hint := r.From, 0
	var sum *OpsSum
	if opts.Sum {
		sum = NewOpsSum(r.From)
	}
	for {
		wd.arm()
		b, err := st.Recv()
		wd.disarm()
		if err == io.EOF {
			return
		}
		if err != nil {
			put(received{err: streamErr(sctx, opts.IdleTimeout, err)})
			return
		}
		ops, err := opsOf(b, hint)
		if err != nil {
			put(received{err: fmt.Errorf("%w: %v", ErrProtocol, err)})
			return
		}
		for _, op := range ops {
			if op.SeqNo < next || op.SeqNo > r.To {
				put(received{err: fmt.Errorf("%w: op %v arrived when %v..%v was expected (ops must come in increasing seqno order within the range)",
					ErrProtocol, op.SeqNo, next, r.To)})
				return
			}
			next = op.SeqNo + 1
		}
		hint = len(ops) + len(ops)/8
		rb := received{ops: ops}
		if sum != nil {
			sum.Add(ops)
			if len(b.OpsSum) > 0 {
				rb.summed = true
				if mine := sum.raw(); !bytes.Equal(mine, b.OpsSum) {
					rb.sumDiff = fmt.Sprintf("the %d ops of the stream from seqno %v had the digest %.6x on this node, %.6x on the source",
						sum.Ops(), r.From, mine, b.OpsSum)
				}
			}
		}
		rb.size = proto.Size(b)
		if rb.wait, err = opts.Throttle.WaitN(sctx, rb.size); err != nil {
			put(received{wait: rb.wait, err: err})
			return
		}
		if !put(rb) {
			return
		}
	}
}

// opsOf decodes a batch: the ops of an older source (a message per op),
// then the packed ones. The packed ops' keys and values point into
// b.PackedOps, which the proto codec copied out of gRPC's buffer and
// nothing else holds or changes: the target's memtable keeps pointers
// into it, so FetchOps must never use a codec that aliases gRPC's pooled
// buffer (as chunkCodec does for FetchFile).
func opsOf(b *pb.OpBatch, hint int) ([]engine.Op, error) {
	var ops []engine.Op
	if len(b.Ops) > 0 {
		var err error
		if ops, err = pbconv.OpsFromPB(b.Ops); err != nil {
			return nil, err
		}
	}
	if len(b.PackedOps) > 0 {
		return pbconv.OpsFromPacked(ops, b.PackedOps, hint)
	}
	return ops, nil
}
