package transfer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// FileClient is the part of pb.PeerServiceClient that FetchFiles uses.
type FileClient interface {
	FetchFile(ctx context.Context, in *pb.FetchFileRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[pb.FileChunk], error)
	RenewPin(ctx context.Context, in *pb.RenewPinRequest, opts ...grpc.CallOption) (*pb.RenewPinResponse, error)
}

// OpsClient is the part of pb.PeerServiceClient that FetchOps uses.
type OpsClient interface {
	FetchOps(ctx context.Context, in *pb.FetchOpsRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[pb.OpBatch], error)
}

// RetryPolicy says how transient errors are retried: exponential backoff
// from Initial to Max (with jitter), giving up once MaxElapsed has passed
// without a byte of progress, or after MaxRetries attempts in a row without
// progress when that is set. Progress resets the budget, so a long transfer
// cut now and then is never abandoned for its length alone.
type RetryPolicy struct {
	Initial    time.Duration // default 200ms
	Max        time.Duration // default 10s
	MaxElapsed time.Duration // default 2 minutes
	MaxRetries int           // default 0: bounded by MaxElapsed only
}

func (p *RetryPolicy) defaults() {
	if p.Initial <= 0 {
		p.Initial = 200 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 10 * time.Second
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = 2 * time.Minute
	}
}

// retrier runs the retry policy of one transfer.
type retrier struct {
	p       RetryPolicy
	bo      *backoff.ExponentialBackOff
	retries int
}

func newRetrier(p RetryPolicy) *retrier {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = p.Initial, p.Max, p.MaxElapsed
	bo.Reset()
	return &retrier{p: p, bo: bo}
}

// next returns the pause before the next attempt, or false when the budget
// is spent. progress says whether the failed attempt moved forward.
func (r *retrier) next(progress bool) (time.Duration, bool) {
	if progress {
		r.bo.Reset()
		r.retries = 0
	}
	r.retries++
	if r.p.MaxRetries > 0 && r.retries > r.p.MaxRetries {
		return 0, false
	}
	d := r.bo.NextBackOff()
	return d, d != backoff.Stop
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// watchdog cancels a stream that delivers nothing for its timeout: a
// blackholed connection or a hung peer must not hold a transfer forever.
// Armed around every wait on the network, disarmed around local work
// (throttle, disk) so that only the peer's silence counts.
type watchdog struct {
	t *time.Timer
	d time.Duration
}

func newWatchdog(d time.Duration, cancel context.CancelCauseFunc) *watchdog {
	if d <= 0 {
		return &watchdog{}
	}
	t := time.AfterFunc(time.Hour, func() { cancel(ErrIdle) })
	t.Stop()
	return &watchdog{t: t, d: d}
}

func (w *watchdog) arm() {
	if w.t != nil {
		w.t.Reset(w.d)
	}
}

func (w *watchdog) disarm() {
	if w.t != nil {
		w.t.Stop()
	}
}

// streamErr names the cause of a failed stream call: the watchdog's
// ErrIdle, or the peer's status as a RemoteError.
func streamErr(sctx context.Context, idle time.Duration, err error) error {
	if cause := context.Cause(sctx); errors.Is(cause, ErrIdle) {
		return fmt.Errorf("%w: nothing received for %v (%v)", ErrIdle, idle, err)
	}
	return FromStatus(err)
}

// ---------------------------------------------------------------------------
// Files

// Pin is a commit pin held on a source (PinCommit).
type Pin struct {
	ID         string
	Shard      shardstore.ShardID
	Generation uint64
	// TTL is how long the pin outlives its holder's silence; KeepPin (and
	// FetchFiles, unless told the caller does) renews the pin at a third
	// of it.
	TTL       time.Duration
	ExpiresAt time.Time
}

func pinFromPB(m *pb.Pin) (Pin, error) {
	if m == nil || m.Id == "" {
		return Pin{}, fmt.Errorf("%w: answer without a pin", ErrProtocol)
	}
	id, err := pbconv.ShardIDFromPB(m.Shard)
	if err != nil {
		return Pin{}, fmt.Errorf("%w: pin: %v", ErrProtocol, err)
	}
	return Pin{ID: m.Id, Shard: id, Generation: m.Generation, TTL: m.GetTtl().AsDuration(), ExpiresAt: pbconv.TimeFromPB(m.ExpiresAt)}, nil
}

// FetchOptions tune FetchFiles; the zero value is usable.
type FetchOptions struct {
	// Parallel is the number of files in flight (default 4).
	Parallel int
	// ChunkSize asked of the source; 0 means the source's default.
	ChunkSize int
	// NoCompression refuses zstd chunks (for a CPU-starved target, or a
	// network fast enough that compression only costs).
	NoCompression bool
	// Throttle is the node's bandwidth budget, applied to bytes received
	// as they came over the wire; nil is unlimited.
	Throttle *Throttle
	// IdleTimeout cancels and resumes a stream that delivered nothing for
	// this long (default 30s; negative disables).
	IdleTimeout time.Duration
	// Retry is the policy for transient errors.
	Retry RetryPolicy
	// MaxCorruptRepeats: a file whose chunk at the same offset fails its
	// checks this many times in a row fails (default 3).
	MaxCorruptRepeats int
	// PinKept says the caller keeps the pin alive (KeepPin) for longer
	// than this call, so FetchFiles does not renew it itself.
	PinKept bool

	// OnBytes is called with every run of verified bytes written to a
	// staged file (and with a file's whole length, or its checked prefix,
	// when a previous attempt of the same recovery left it complete, or
	// partly staged). It must be safe for
	// concurrent use, as must the other callbacks.
	OnBytes func(file string, n int64)
	// OnFileDone is called once a file is staged and verified.
	OnFileDone func(f shardstore.FileMeta)
	// OnResume is called before a file is resumed from offset after cause.
	OnResume func(file string, offset int64, cause error)
	// OnThrottle is called with each wait for the bandwidth budget.
	OnThrottle func(d time.Duration)
}

const (
	defaultParallel          = 4
	defaultIdleTimeout       = 30 * time.Second
	defaultMaxCorruptRepeats = 3
)

func (o *FetchOptions) defaults() {
	if o.Parallel <= 0 {
		o.Parallel = defaultParallel
	}
	if o.ChunkSize < 0 {
		o.ChunkSize = 0
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = defaultIdleTimeout
	}
	if o.MaxCorruptRepeats <= 0 {
		o.MaxCorruptRepeats = defaultMaxCorruptRepeats
	}
	o.Retry.defaults()
}

// FetchResult sums up a FetchFiles call (also when it failed).
type FetchResult struct {
	// Files fetched and verified; AlreadyStaged files a previous attempt of
	// the same recovery left complete and verified.
	Files, AlreadyStaged int
	// ResumedBytes were checked by a previous attempt of the same recovery
	// (the prefixes of files it left partly staged): not asked for again.
	ResumedBytes int64
	// Bytes is the raw bytes received and written; WireBytes the chunk
	// payloads as they came over the wire.
	Bytes, WireBytes int64
	// Resumes counts streams resumed after a transient error.
	Resumes      int64
	ThrottleWait time.Duration
}

type fetcher struct {
	c       FileClient
	shard   shardstore.ShardID
	pin     Pin
	staging *shardstore.Staging
	opts    FetchOptions

	files, staged                            atomic.Int64
	bytes, wire, resumes, throttled, resumed atomic.Int64
}

// FetchFiles copies files of a commit pinned on a source (pin) into
// staging, several files at once (opts.Parallel), largest first. Each file
// is streamed in chunks; each chunk's offset, length and CRC32C are checked
// before it is written at its offset, and the whole file's CRC32C is
// verified (StagedFile.Verify) before it counts as received.
//
// A stream broken by a transient error (IsTransient), a corrupt chunk or a
// silent peer (opts.IdleTimeout) is resumed from the last verified offset
// after a backoff (opts.Retry); bytes already verified are never asked for
// again. Permanent errors (NotFound, InvalidArgument, FailedPrecondition,
// OutOfRange, a file that does not verify, repeated corruption at one
// offset, local write errors) fail the call at once, cancelling the other
// files. Errors name the file. While it runs, FetchFiles keeps the pin
// alive (KeepPin) unless opts.PinKept says the caller does; a pin found
// gone fails the call with ErrPinNotFound.
func FetchFiles(ctx context.Context, c FileClient, shard shardstore.ShardID, pin Pin, files []shardstore.FileMeta,
	staging *shardstore.Staging, opts FetchOptions) (FetchResult, error) {
	opts.defaults()
	f := &fetcher{c: c, shard: shard, pin: pin, staging: staging, opts: opts}
	if pin.ID == "" {
		return FetchResult{}, errors.New("transfer: FetchFiles needs a commit pin")
	}
	if staging == nil {
		return FetchResult{}, errors.New("transfer: FetchFiles needs a staging area")
	}
	seen := make(map[string]bool, len(files))
	for _, fm := range files {
		if err := shardstore.ValidateName(fm.Name); err != nil {
			return FetchResult{}, fmt.Errorf("transfer: %w", err)
		}
		if seen[fm.Name] {
			return FetchResult{}, fmt.Errorf("transfer: file %s listed twice", fm.Name)
		}
		seen[fm.Name] = true
	}
	order := slices.Clone(files)
	slices.SortStableFunc(order, func(a, b shardstore.FileMeta) int { return cmp.Compare(b.Length, a.Length) })

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	if pin.TTL > 0 && !opts.PinKept {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := KeepPin(ctx, c, pin, nil); err != nil {
				cancel(fmt.Errorf("transfer: commit pin %s on the source was lost: %w", pin.ID, err))
			}
		}()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Parallel)
	for _, fm := range order {
		g.Go(func() error { return f.fetchFile(gctx, fm) })
	}
	err := g.Wait()
	if err != nil && ctx.Err() != nil {
		// Prefer the reason the whole call was cancelled (a lost pin, the
		// caller's cancel) over the error of the file that noticed it.
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", cause, err)
		}
	}
	cancel(nil)
	wg.Wait()
	return f.result(), err
}

func (f *fetcher) result() FetchResult {
	return FetchResult{
		Files: int(f.files.Load()), AlreadyStaged: int(f.staged.Load()), ResumedBytes: f.resumed.Load(), Bytes: f.bytes.Load(), WireBytes: f.wire.Load(),
		Resumes: f.resumes.Load(), ThrottleWait: time.Duration(f.throttled.Load()),
	}
}

func (f *fetcher) throttle(ctx context.Context, n int) error {
	d, err := f.opts.Throttle.WaitN(ctx, n)
	if d > 0 {
		f.throttled.Add(int64(d))
		if f.opts.OnThrottle != nil {
			f.opts.OnThrottle(d)
		}
	}
	return err
}

// fetchFile stages and verifies one file, resuming as needed.
func (f *fetcher) fetchFile(ctx context.Context, meta shardstore.FileMeta) error {
	sf, err := f.staging.CreateFile(meta)
	if err != nil {
		return fmt.Errorf("transfer: stage file %s: %w", meta.Name, err)
	}
	defer sf.Close()
	if size, err := sf.Size(); err == nil && size == meta.Length && sf.Verify() == nil {
		f.staged.Add(1)
		if f.opts.OnBytes != nil {
			f.opts.OnBytes(meta.Name, meta.Length)
		}
		if f.opts.OnFileDone != nil {
			f.opts.OnFileDone(meta)
		}
		return nil
	}
	// Resume after the prefix an earlier attempt of this recovery checked
	// chunk by chunk (a re-plan after the source restarted keeps it); the
	// rest is not trusted.
	verified := sf.Good()
	if verified >= meta.Length {
		verified = 0 // whole but it does not verify: fetch it again
	}
	if err := sf.Truncate(verified); err != nil {
		return fmt.Errorf("transfer: stage file %s: %w", meta.Name, err)
	}
	if verified > 0 {
		f.resumed.Add(verified)
		if f.opts.OnBytes != nil {
			f.opts.OnBytes(meta.Name, verified)
		}
	}
	var (
		corruptAt int64 = -1
		corruptN  int
		retry     = newRetrier(f.opts.Retry)
	)
	for {
		n, err := f.streamOnce(ctx, sf, meta, verified)
		verified += n
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("transfer: file %s at offset %d: %w", meta.Name, verified, context.Cause(ctx))
		}
		if errors.Is(err, ErrChunkCorrupt) {
			if verified == corruptAt {
				corruptN++
			} else {
				corruptAt, corruptN = verified, 1
			}
			if corruptN >= f.opts.MaxCorruptRepeats {
				return fmt.Errorf("transfer: file %s: %d corrupt chunks in a row at offset %d (last: %v): %w",
					meta.Name, corruptN, verified, err, shardstore.ErrCorrupt)
			}
		} else if !IsTransient(err) {
			return fmt.Errorf("transfer: file %s at offset %d: %w", meta.Name, verified, err)
		}
		d, ok := retry.next(n > 0)
		if !ok {
			return fmt.Errorf("transfer: file %s: giving up at offset %d of %d: %w: %w", meta.Name, verified, meta.Length, ErrRetriesExhausted, err)
		}
		f.resumes.Add(1)
		if f.opts.OnResume != nil {
			f.opts.OnResume(meta.Name, verified, err)
		}
		if err := sleep(ctx, d); err != nil {
			return fmt.Errorf("transfer: file %s at offset %d: %w", meta.Name, verified, err)
		}
	}
	if err := sf.Verify(); err != nil {
		return fmt.Errorf("transfer: file %s was received whole but does not verify: %w", meta.Name, err)
	}
	f.files.Add(1)
	if f.opts.OnFileDone != nil {
		f.opts.OnFileDone(meta)
	}
	return nil
}

// chunkStream is the part of the FetchFile client stream streamOnce reads.
type chunkStream interface {
	Recv() (*pb.FileChunk, error)
}

// streamOnce runs one FetchFile stream from off and returns the bytes it
// verified and wrote.
func (f *fetcher) streamOnce(ctx context.Context, sf *shardstore.StagedFile, meta shardstore.FileMeta, off int64) (int64, error) {
	if off >= meta.Length {
		return 0, nil
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := newWatchdog(f.opts.IdleTimeout, cancel)
	defer wd.disarm()
	comp := pb.Compression_COMPRESSION_ZSTD
	if f.opts.NoCompression {
		comp = pb.Compression_COMPRESSION_NONE
	}
	wd.arm()
	st, err := f.c.FetchFile(sctx, &pb.FetchFileRequest{
		Shard: pbconv.ShardID(f.shard), PinId: f.pin.ID, Name: meta.Name, Offset: off,
		ChunkSize: uint32(f.opts.ChunkSize), Compression: comp,
	})
	wd.disarm()
	if err != nil {
		return 0, streamErr(sctx, f.opts.IdleTimeout, err)
	}
	return f.receive(ctx, sctx, st, wd, sf, meta, off)
}

// receive reads chunks from st until the file is complete.
func (f *fetcher) receive(ctx, sctx context.Context, st chunkStream, wd *watchdog, sf *shardstore.StagedFile, meta shardstore.FileMeta, off int64) (int64, error) {
	var got int64
	for off+got < meta.Length {
		wd.arm()
		ch, err := st.Recv()
		wd.disarm()
		if err == io.EOF {
			return got, fmt.Errorf("%w: file %s at offset %d of %d", ErrShortStream, meta.Name, off+got, meta.Length)
		}
		if err != nil {
			return got, streamErr(sctx, f.opts.IdleTimeout, err)
		}
		pos := off + got
		data, err := chunkData(ch, pos, meta.Length-pos)
		if err != nil {
			return got, err
		}
		if err := f.throttle(ctx, len(ch.Data)); err != nil {
			return got, err
		}
		if _, err := sf.WriteAt(data, pos); err != nil {
			return got, fmt.Errorf("transfer: write %s at %d: %w", meta.Name, pos, err)
		}
		sf.MarkGood(pos + int64(len(data)))
		got += int64(len(data))
		f.bytes.Add(int64(len(data)))
		f.wire.Add(int64(len(ch.Data)))
		if f.opts.OnBytes != nil {
			f.opts.OnBytes(meta.Name, int64(len(data)))
		}
	}
	// Let the stream end cleanly (trailers) rather than cancel it; what
	// comes after the last byte changes nothing.
	wd.arm()
	_, _ = st.Recv()
	wd.disarm()
	return got, nil
}

// ---------------------------------------------------------------------------
// Ops

// OpsOptions tune FetchOps; the zero value is usable.
type OpsOptions struct {
	// BatchSize asked of the source (ops per batch); 0 means its default.
	BatchSize int
	// Throttle applies to op batches received (their encoded size).
	Throttle *Throttle
	// IdleTimeout as for FetchOptions (default 30s; negative disables).
	IdleTimeout time.Duration
	Retry       RetryPolicy
	// OnResume is called before the stream is resumed at seqno next.
	OnResume func(next seqno.SeqNo, cause error)
	// OnThrottle is called with each wait for the bandwidth budget.
	OnThrottle func(d time.Duration)
}

// OpsResult sums up a FetchOps call (also when it failed).
type OpsResult struct {
	Ops, Batches, WireBytes, Resumes int64
	ThrottleWait                     time.Duration
	// Last is the seqno of the last op handed to fn (seqno.Unassigned when
	// none was).
	Last seqno.SeqNo
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
func FetchOps(ctx context.Context, c OpsClient, shard shardstore.ShardID, r seqno.Range, historyUUID string,
	fn func([]shardstore.Op) error, opts OpsOptions) (OpsResult, error) {
	res := OpsResult{Last: seqno.Unassigned}
	if err := r.Validate(); err != nil {
		return res, fmt.Errorf("transfer: %w", err)
	}
	if historyUUID == "" {
		return res, errors.New("transfer: FetchOps needs the source's history UUID")
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = defaultIdleTimeout
	}
	opts.Retry.defaults()
	retry := newRetrier(opts.Retry)
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
		if !IsTransient(err) {
			return res, fmt.Errorf("transfer: ops %v at %v: %w", r, next, err)
		}
		d, ok := retry.next(res.Ops > before)
		if !ok {
			return res, fmt.Errorf("transfer: ops %v: giving up at %v: %w: %w", r, next, ErrRetriesExhausted, err)
		}
		res.Resumes++
		if opts.OnResume != nil {
			opts.OnResume(next, err)
		}
		if err := sleep(ctx, d); err != nil {
			return res, fmt.Errorf("transfer: ops %v at %v: %w", r, next, err)
		}
	}
	return res, nil
}

func fetchOpsOnce(ctx context.Context, c OpsClient, shard shardstore.ShardID, r seqno.Range, history string,
	fn func([]shardstore.Op) error, opts *OpsOptions, res *OpsResult) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := newWatchdog(opts.IdleTimeout, cancel)
	defer wd.disarm()
	wd.arm()
	st, err := c.FetchOps(sctx, &pb.FetchOpsRequest{
		Shard: pbconv.ShardID(shard), Range: pbconv.Range(r), BatchSize: uint32(max(opts.BatchSize, 0)), ExpectedHistoryUuid: history,
	})
	wd.disarm()
	if err != nil {
		return streamErr(sctx, opts.IdleTimeout, err)
	}
	next := r.From
	for {
		wd.arm()
		b, err := st.Recv()
		wd.disarm()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return streamErr(sctx, opts.IdleTimeout, err)
		}
		ops, err := pbconv.OpsFromPB(b.Ops)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		for _, op := range ops {
			if op.SeqNo < next || op.SeqNo > r.To {
				return fmt.Errorf("%w: op %v arrived when %v..%v was expected (ops must come in increasing seqno order within the range)",
					ErrProtocol, op.SeqNo, next, r.To)
			}
			next = op.SeqNo + 1
		}
		size := proto.Size(b)
		d, err := opts.Throttle.WaitN(ctx, size)
		if d > 0 {
			res.ThrottleWait += d
			if opts.OnThrottle != nil {
				opts.OnThrottle(d)
			}
		}
		if err != nil {
			return err
		}
		if len(ops) == 0 {
			continue
		}
		if err := fn(ops); err != nil {
			return fnError{err}
		}
		res.Ops += int64(len(ops))
		res.Batches++
		res.WireBytes += int64(size)
		res.Last = ops[len(ops)-1].SeqNo
	}
}

// ---------------------------------------------------------------------------
// Metadata, pins and leases

// ShardInfo is what a source tells about its copy (GetShardMetadata,
// PinCommit): what a planner needs of the source.
type ShardInfo struct {
	Shard shardstore.ShardID
	// Meta is the current (or pinned) commit.
	Meta shardstore.Metadata
	// Seq are the live seqno statistics (max seqno includes unflushed ops).
	Seq seqno.Stats
	// Retained is the range of ops the source's op log can serve.
	Retained seqno.Range
	Leases   []Lease
	// WriterVersion and MaxFormat of the source node.
	WriterVersion string
	MaxFormat     int
	// AvgOpBytes is the source's average op size; 0 when unknown.
	AvgOpBytes  int64
	PrimaryTerm uint64
}

// Lease is a retention lease held on a source.
type Lease struct {
	seqno.RetentionLease
	TTL       time.Duration
	ExpiresAt time.Time
}

func leaseFromPB(m *pb.RetentionLease) (Lease, error) {
	l, ttl, err := pbconv.LeaseFromPB(m)
	if err != nil {
		return Lease{}, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return Lease{RetentionLease: l, TTL: ttl, ExpiresAt: pbconv.TimeFromPB(m.ExpiresAt)}, nil
}

// ShardInfoFromPB converts and checks a source's ShardInfo.
func ShardInfoFromPB(m *pb.ShardInfo) (ShardInfo, error) {
	if m == nil {
		return ShardInfo{}, fmt.Errorf("%w: answer without shard info", ErrProtocol)
	}
	id, err := pbconv.ShardIDFromPB(m.Shard)
	if err != nil {
		return ShardInfo{}, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	meta, err := pbconv.MetadataFromPB(m.Metadata)
	if err != nil {
		return ShardInfo{}, fmt.Errorf("%w: shard %s: %v", ErrProtocol, id, err)
	}
	retained, err := pbconv.RangeFromPB(m.RetainedOps)
	if err != nil {
		return ShardInfo{}, fmt.Errorf("%w: shard %s retained ops: %v", ErrProtocol, id, err)
	}
	info := ShardInfo{
		Shard: id, Meta: meta, Seq: pbconv.StatsFromPB(m.Seqno), Retained: retained,
		WriterVersion: m.WriterVersion, MaxFormat: int(m.MaxFormat), AvgOpBytes: m.AvgOpBytes, PrimaryTerm: m.PrimaryTerm,
	}
	for _, l := range m.Leases {
		le, err := leaseFromPB(l)
		if err != nil {
			return ShardInfo{}, err
		}
		info.Leases = append(info.Leases, le)
	}
	return info, nil
}

// GetShardInfo asks a source about its copy of a shard (no pin).
func GetShardInfo(ctx context.Context, c pb.PeerServiceClient, shard shardstore.ShardID) (ShardInfo, error) {
	resp, err := c.GetShardMetadata(ctx, &pb.GetShardMetadataRequest{Shard: pbconv.ShardID(shard)})
	if err != nil {
		return ShardInfo{}, fmt.Errorf("transfer: shard metadata of %s: %w", shard, FromStatus(err))
	}
	return ShardInfoFromPB(resp.Info)
}

// Digest is a source's digest of its live documents (GetShardDigest).
type Digest struct {
	Digest      string
	HistoryUUID string
	Seq         seqno.Stats
	// UpTo is the seqno the digest covers; seqno.Unassigned from a source
	// that digests only its whole content.
	UpTo seqno.SeqNo
}

// GetShardDigest asks a source for the digest of its content as of upTo
// (seqno.Unassigned: all of it), starting from the commit pinned by pinID
// ("": none) when the source's current commit holds ops past upTo. It is
// a full scan of the source's shard, which goes on taking writes.
// seqno.ErrCompacted when the source no longer holds its content at upTo.
func GetShardDigest(ctx context.Context, c pb.PeerServiceClient, shard shardstore.ShardID, pinID string, upTo seqno.SeqNo) (Digest, error) {
	req := &pb.GetShardDigestRequest{Shard: pbconv.ShardID(shard), PinId: pinID}
	if upTo != seqno.Unassigned {
		req.UpToSeqno = proto.Int64(int64(upTo))
	}
	resp, err := c.GetShardDigest(ctx, req)
	if err != nil {
		return Digest{}, fmt.Errorf("transfer: digest of %s: %w", shard, FromStatus(err))
	}
	d := Digest{Digest: resp.Digest, HistoryUUID: resp.HistoryUuid, Seq: pbconv.StatsFromPB(resp.Seqno), UpTo: seqno.Unassigned}
	if resp.UpToSeqno != nil {
		d.UpTo = seqno.SeqNo(resp.GetUpToSeqno())
	}
	return d, nil
}

// PinCommit pins the source's current commit for ttl (0: the source's
// default) and returns the pin and the pinned commit's info. holder labels
// the pin in the source's logs.
func PinCommit(ctx context.Context, c pb.PeerServiceClient, shard shardstore.ShardID, ttl time.Duration, holder string) (Pin, ShardInfo, error) {
	return PinCommitAs(ctx, c, shard, ttl, holder, "")
}

// PinCommitAs is PinCommit with an id chosen by the caller (see
// PinCommitRequest.pin_id): recorded before the call, it lets the caller
// release the pin whatever became of the answer, and a call retried after
// a lost answer gets the same pin.
func PinCommitAs(ctx context.Context, c pb.PeerServiceClient, shard shardstore.ShardID, ttl time.Duration, holder, id string) (Pin, ShardInfo, error) {
	req := &pb.PinCommitRequest{Shard: pbconv.ShardID(shard), Holder: holder, PinId: id}
	if ttl > 0 {
		req.Ttl = durationpb.New(ttl)
	}
	resp, err := c.PinCommit(ctx, req)
	if err != nil {
		return Pin{}, ShardInfo{}, fmt.Errorf("transfer: pin commit of %s: %w", shard, FromStatus(err))
	}
	p, err := pinFromPB(resp.Pin)
	if err != nil {
		return Pin{}, ShardInfo{}, err
	}
	info, err := ShardInfoFromPB(resp.Info)
	if err != nil {
		return Pin{}, ShardInfo{}, err
	}
	return p, info, nil
}

// RenewPin restarts a pin's TTL; a pin gone answers ErrPinNotFound.
func RenewPin(ctx context.Context, c pb.PeerServiceClient, pinID string) (Pin, error) {
	resp, err := c.RenewPin(ctx, &pb.RenewPinRequest{PinId: pinID})
	if err != nil {
		return Pin{}, fmt.Errorf("transfer: renew pin %s: %w", pinID, FromStatus(err))
	}
	return pinFromPB(resp.Pin)
}

// ReleasePin releases a pin (an unknown one is not an error).
func ReleasePin(ctx context.Context, c pb.PeerServiceClient, pinID string) error {
	if _, err := c.ReleasePin(ctx, &pb.ReleasePinRequest{PinId: pinID}); err != nil {
		return fmt.Errorf("transfer: release pin %s: %w", pinID, FromStatus(err))
	}
	return nil
}

// AcquireLease takes a retention lease on the source. Errors wrap
// seqno.ErrCompacted (the ops are gone: a file copy is needed) or
// seqno.ErrLeaseExists.
func AcquireLease(ctx context.Context, c pb.PeerServiceClient, shard shardstore.ShardID, id string, retaining seqno.SeqNo, source string) (Lease, error) {
	resp, err := c.AcquireLease(ctx, &pb.AcquireLeaseRequest{Shard: pbconv.ShardID(shard), LeaseId: id, RetainingSeqno: int64(retaining), Source: source})
	if err != nil {
		return Lease{}, fmt.Errorf("transfer: acquire lease %s on %s: %w", id, shard, FromStatus(err))
	}
	return leaseFromPB(resp.Lease)
}

// RenewLease refreshes a retention lease; retaining raises its seqno
// (seqno.Unassigned keeps it). A lease expired or released answers an
// error wrapping seqno.ErrLeaseLost: re-plan, never continue.
func RenewLease(ctx context.Context, c pb.PeerServiceClient, shard shardstore.ShardID, id string, retaining seqno.SeqNo) (Lease, error) {
	req := &pb.RenewLeaseRequest{Shard: pbconv.ShardID(shard), LeaseId: id}
	if retaining != seqno.Unassigned {
		r := int64(retaining)
		req.RetainingSeqno = &r
	}
	resp, err := c.RenewLease(ctx, req)
	if err != nil {
		return Lease{}, fmt.Errorf("transfer: renew lease %s on %s: %w", id, shard, FromStatus(err))
	}
	return leaseFromPB(resp.Lease)
}

// ReleaseLease releases a retention lease (an unknown one is not an error).
func ReleaseLease(ctx context.Context, c pb.PeerServiceClient, shard shardstore.ShardID, id string) error {
	if _, err := c.ReleaseLease(ctx, &pb.ReleaseLeaseRequest{Shard: pbconv.ShardID(shard), LeaseId: id}); err != nil {
		return fmt.Errorf("transfer: release lease %s on %s: %w", id, shard, FromStatus(err))
	}
	return nil
}
