package transfer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/internal/staging"
)

// FileClient is the part of pb.PeerServiceClient that FetchFiles uses.
type FileClient interface {
	FetchFile(ctx context.Context, in *pb.FetchFileRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[pb.FileChunk], error)
	RenewPin(ctx context.Context, in *pb.RenewPinRequest, opts ...grpc.CallOption) (*pb.RenewPinResponse, error)
}

// FetchOptions tune FetchFiles; the zero value is usable.
type FetchOptions struct {
	// Parallel is the number of files in flight (default 8).
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
	// Retry is the policy for transient errors; zero fields are
	// retry.Peer's.
	Retry retry.Options
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
	OnFileDone func(f engine.FileMeta)
	// OnResume is called before a file is resumed from offset after cause.
	OnResume func(file string, offset int64, cause error)
	// OnThrottle is called with each wait for the bandwidth budget.
	OnThrottle func(d time.Duration)
}

const (
	defaultParallel          = 8
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
	o.Retry = retry.Peer.With(o.Retry)
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
	// Summed holds the BLAKE3 sum of each file the source and this node
	// hashed from the bytes as they streamed, and found equal (the
	// streamed check). A file missing from it was not compared so: staged
	// by an earlier process, or sent by a source that does not hash.
	Summed map[string]staging.Sum
}

type fetcher struct {
	c     FileClient
	shard engine.ShardID
	pin   Pin
	area  *staging.Area
	opts  FetchOptions

	files, staged                            atomic.Int64
	bytes, wire, resumes, throttled, resumed atomic.Int64

	mu     sync.Mutex
	summed map[string]staging.Sum

	data   *dataDialer // nil: over gRPC only
	noData atomic.Bool // the source does not serve data connections
}

// summedFile records a file whose sum matched the source's.
func (f *fetcher) summedFile(sf *staging.File) {
	if sum, ok := sf.Matched(); ok {
		f.mu.Lock()
		f.summed[sf.Meta().Name] = sum
		f.mu.Unlock()
	}
}

// FetchFiles copies files of a commit pinned on a source (pin) into
// staging, several files at once (opts.Parallel), largest first. Each file
// is streamed in chunks; each chunk's offset, length and CRC32C are checked
// before it is written at its offset, and the whole file's CRC32C is
// verified (staging.File.Verify), and its BLAKE3 sum compared with the one the
// source computed as it sent it (staging.File.MatchSum), before it counts
// as received.
//
// A stream broken by a transient error (retry.IsTransient), a corrupt chunk or a
// silent peer (opts.IdleTimeout) is resumed from the last verified offset
// after a backoff (opts.Retry); bytes already verified are never asked for
// again. Permanent errors (NotFound, InvalidArgument, FailedPrecondition,
// OutOfRange, a file that does not verify, repeated corruption at one
// offset, local write errors) fail the call at once, cancelling the other
// files. Errors name the file. While it runs, FetchFiles keeps the pin
// alive (KeepPin) unless opts.PinKept says the caller does; a pin found
// gone fails the call with ErrPinNotFound.
func FetchFiles(ctx context.Context, c FileClient, shard engine.ShardID, pin Pin, files []engine.FileMeta,
	area *staging.Area, opts FetchOptions) (FetchResult, error) {
	opts.defaults()
	f := &fetcher{c: c, shard: shard, pin: pin, area: area, opts: opts, summed: map[string]staging.Sum{}}
	if dc, ok := c.(interface{ dataDialer() *dataDialer }); ok {
		f.data = dc.dataDialer()
	}
	if pin.ID == "" {
		return FetchResult{}, errors.New("transfer: FetchFiles needs a commit pin")
	}
	if area == nil {
		return FetchResult{}, errors.New("transfer: FetchFiles needs a staging area")
	}
	seen := make(map[string]bool, len(files))
	for _, fm := range files {
		if err := engine.ValidateName(fm.Name); err != nil {
			return FetchResult{}, fmt.Errorf("transfer: %w", err)
		}
		if seen[fm.Name] {
			return FetchResult{}, fmt.Errorf("transfer: file %s listed twice", fm.Name)
		}
		seen[fm.Name] = true
	}
	order := slices.Clone(files)
	slices.SortStableFunc(order, func(a, b engine.FileMeta) int { return cmp.Compare(b.Length, a.Length) })

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
	for _, grp := range groupFiles(order) {
		g.Go(func() error { return f.fetchGroup(gctx, grp) })
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
		Resumes: f.resumes.Load(), ThrottleWait: time.Duration(f.throttled.Load()), Summed: f.summed,
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

// Small files go several per stream: a stream per file cost a round trip
// and the setup of a gRPC stream on both nodes for every 100 KiB
// (bench/README.md, case 2).
const (
	// batchFileMax: files up to this long are batched.
	batchFileMax = 1 << 20
	// batchFiles and batchBytes bound a batch.
	batchFiles = 64
	batchBytes = 8 << 20
)

// groupFiles splits files (largest first) into the units fetched by one
// worker: a large file alone, small ones in batches.
func groupFiles(files []engine.FileMeta) [][]engine.FileMeta {
	var groups [][]engine.FileMeta
	var cur []engine.FileMeta
	var curBytes int64
	for _, fm := range files {
		if fm.Length > batchFileMax {
			groups = append(groups, []engine.FileMeta{fm})
			continue
		}
		if len(cur) == batchFiles || len(cur) > 0 && curBytes+fm.Length > batchBytes {
			groups = append(groups, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, fm)
		curBytes += fm.Length
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// pending is a file of a group not yet staged whole: off is the prefix
// already written and verified.
type pending struct {
	meta engine.FileMeta
	off  int64
}

// fetchGroup stages and verifies a group of files (groupFiles), in one
// stream while it lasts, resuming as needed: a cut stream resumes at the
// first file not staged whole, from its last verified offset.
func (f *fetcher) fetchGroup(ctx context.Context, metas []engine.FileMeta) error {
	todo := make([]pending, 0, len(metas))
	for _, m := range metas {
		off, done, err := f.prepare(m)
		if err != nil {
			return err
		}
		if !done {
			todo = append(todo, pending{meta: m, off: off})
		}
	}
	var (
		corruptName string
		corruptAt   int64 = -1
		corruptN    int
		retrier     = retry.New(f.opts.Retry)
	)
	for len(todo) > 0 {
		before := todo[0].off
		done, err := f.streamOnce(ctx, todo)
		progress := done > 0 || todo[0].off > before
		todo = todo[done:]
		if err == nil {
			continue // all done, or a server that sends one file per stream
		}
		cur := todo[0]
		var whole wholeErr
		if errors.As(err, &whole) {
			return whole.error
		}
		if ctx.Err() != nil {
			return fmt.Errorf("transfer: file %s at offset %d: %w", cur.meta.Name, cur.off, context.Cause(ctx))
		}
		if errors.Is(err, ErrChunkCorrupt) {
			if cur.meta.Name == corruptName && cur.off == corruptAt {
				corruptN++
			} else {
				corruptName, corruptAt, corruptN = cur.meta.Name, cur.off, 1
			}
			if corruptN >= f.opts.MaxCorruptRepeats {
				return fmt.Errorf("transfer: file %s: %d corrupt chunks in a row at offset %d (last: %v): %w",
					cur.meta.Name, corruptN, cur.off, err, engine.ErrCorrupt)
			}
		} else if !retry.IsTransient(err) {
			return fmt.Errorf("transfer: file %s at offset %d: %w", cur.meta.Name, cur.off, err)
		}
		if progress {
			retrier.Progress()
		}
		d, ok := retrier.Next()
		if !ok {
			return fmt.Errorf("transfer: file %s: giving up at offset %d of %d: %w: %w", cur.meta.Name, cur.off, cur.meta.Length, ErrRetriesExhausted, err)
		}
		f.resumes.Add(1)
		if f.opts.OnResume != nil {
			f.opts.OnResume(cur.meta.Name, cur.off, err)
		}
		if err := retry.Sleep(ctx, d); err != nil {
			return fmt.Errorf("transfer: file %s at offset %d: %w", cur.meta.Name, cur.off, err)
		}
	}
	return nil
}

// wholeErr is a file received whole that does not verify: the call fails
// with it as it is.
type wholeErr struct{ error }

func (e wholeErr) Unwrap() error { return e.error }

// prepare looks at what an earlier attempt of this recovery staged of a
// file: done when it is there whole and verified, else the verified
// prefix to resume after (the rest is cut off).
func (f *fetcher) prepare(meta engine.FileMeta) (off int64, done bool, err error) {
	if f.area.Untouched(meta.Name) {
		return 0, false, nil // an open and a truncate per file were 19% of the target's CPU in bench case 2
	}
	sf, err := f.area.CreateFile(meta)
	if err != nil {
		return 0, false, fmt.Errorf("transfer: stage file %s: %w", meta.Name, err)
	}
	defer sf.Close()
	if size, err := sf.Size(); err == nil && size == meta.Length && sf.Verify() == nil {
		f.staged.Add(1)
		f.summedFile(sf)
		if f.opts.OnBytes != nil {
			f.opts.OnBytes(meta.Name, meta.Length)
		}
		if f.opts.OnFileDone != nil {
			f.opts.OnFileDone(meta)
		}
		return 0, true, nil
	}
	// Resume after the prefix an earlier attempt of this recovery checked
	// chunk by chunk (a re-plan after the source restarted keeps it); the
	// rest is not trusted.
	verified := sf.Good()
	if verified >= meta.Length {
		verified = 0 // whole but it does not verify: fetch it again
	}
	if err := sf.Truncate(verified); err != nil {
		return 0, false, fmt.Errorf("transfer: stage file %s: %w", meta.Name, err)
	}
	if verified > 0 {
		f.resumed.Add(verified)
		if f.opts.OnBytes != nil {
			f.opts.OnBytes(meta.Name, verified)
		}
	}
	return verified, false, nil
}
