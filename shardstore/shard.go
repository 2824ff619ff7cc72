package shardstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/recoverd/recoverd/internal/fsutil"
	"github.com/recoverd/recoverd/seqno"
)

// ErrClosed is returned by calls on a closed shard.
var ErrClosed = errors.New("shardstore: shard is closed")

// ErrNotFound is returned when a shard does not exist on disk.
var ErrNotFound = errors.New("shardstore: shard not found")

// ErrUnavailable is returned by Open when a shard cannot be opened now for
// a reason that proves nothing about its data: a read error (EIO, EMFILE,
// EACCES), its lock held by another process, a format newer than this
// build. Unlike ErrCorrupt it never justifies moving the shard aside: it
// stays where it is and opens again once the cause is gone.
var ErrUnavailable = errors.New("shardstore: shard unavailable")

const (
	leasesFile = "leases"
	lockFile   = "LOCK"
	stagingDir = "staging"
)

// Options configure a shard.
type Options struct {
	// Create makes an empty shard with a new history when none exists.
	Create bool
	// KeepStaging keeps the staging directories at open, for recoveries
	// that resume after a restart (Staging.Keep checks what they staged);
	// Sweep removes those of recoveries that do not. By default Open
	// removes them.
	KeepStaging bool
	// Uncommitted, with Create, opens a shard that does not exist without
	// writing its first commit: a recovery onto this node builds it. Until
	// a Staging publishes its first commit the directory holds no commit
	// point, so List, Exists, ReadMetadata and Open without Create see no
	// shard, and the open Shard has no history (Committed is false):
	// Flush, Merge, Promote and AcquireCommit refuse with ErrNoCommit. A
	// recovery that fails leaves a directory without a commit, which the
	// caller removes: nothing of it was ever a shard.
	Uncommitted bool
	// RetainOps keeps at least this many ops below the local checkpoint in
	// the op log (beyond what retention leases ask for), so a copy that was
	// briefly away can catch up with ops alone.
	RetainOps int64
	// LeaseTTL is how long a retention lease lives without renewal
	// (default 5 minutes).
	LeaseTTL time.Duration
	// Now is the clock for leases; nil means time.Now.
	Now func() time.Time
	// MaxSegmentBytes bounds the segments a merge writes (default 256 MiB).
	MaxSegmentBytes int64
	// FlushBytes flushes the memtable on its own once it takes about this
	// much memory (default 32 MiB; negative: only explicit flushes),
	// bounding the memory a long replay or bulk load takes.
	FlushBytes int64
	// Failpoint, when set, is called at named points of writes so crash
	// tests can stop the process exactly there.
	Failpoint func(name string)
	// Fault, when set, is asked before named I/O steps ("oplog.read",
	// "oplog.fsync", "staging.fsync") with the path of the file; an error
	// it returns is handled as if that step had failed. Tests use it to
	// make a disk fault happen where no real disk can be made to fail on
	// demand.
	Fault  func(point, path string) error
	Logger *slog.Logger
}

// Shard is one shard copy on disk, opened by one process at a time.
type Shard struct {
	id   ShardID
	dir  string
	opts Options
	lock *os.File
	log  *slog.Logger

	// mu guards everything below and serialises flush, merge and publish
	// against each other and against op application.
	mu          sync.RWMutex
	closed      bool
	commit      *commitPoint
	segments    []*segment
	memtable    map[string]*Op
	memBytes    int64
	tracker     *seqno.CheckpointTracker
	term        uint64
	history     string
	globalCP    seqno.SeqNo
	nextSegment uint64
	// lastGen is the highest commit generation on disk, valid or not: a new
	// commit never reuses the name of a damaged one.
	lastGen uint64
	oplog   *opLog
	leases  *seqno.Leases
	// pins counts, per file name, the commit references held by readers
	// (snapshot uploads, peer transfers) so their files outlive newer commits.
	pins     map[string]int
	stagings map[string]*Staging

	// termSeq maps each primary term of an op the copy holds or held to
	// the highest seqno of such an op (terms.go).
	termSeq map[uint64]seqno.SeqNo
	// inflight counts the writes whose ops are appended to the op log but
	// not yet applied and marked processed (or dropped by a failed fsync);
	// settled (on mu) is signalled whenever one ends. Promote waits for
	// none to be left, so that what is left unprocessed below the max
	// seqno is a real gap; while promoting is set no write starts.
	inflight  int
	settled   sync.Cond
	promoting int
	// replayed is how many ops the last open replayed above the commit's
	// local checkpoint.
	replayed int

	// contentVersion changes with every op applied and every publish; the
	// digest cached for a version (at digestUpTo) is valid while it holds.
	contentVersion atomic.Uint64
	digestMu       sync.Mutex
	digest         string
	digestVersion  uint64
	digestUpTo     seqno.SeqNo
	digestOK       bool
}

// Dir returns the directory of a shard under a data directory.
func Dir(dataDir string, id ShardID) string {
	return filepath.Join(dataDir, "shards", id.Index, strconv.Itoa(id.Shard))
}

// Exists reports whether a shard directory with a commit point exists
// (false too when its directory cannot be read; Open says why).
func Exists(dataDir string, id ShardID) bool {
	ok, err := hasCommit(Dir(dataDir, id))
	return ok && err == nil
}

// hasCommit reports whether dir holds a commit point; an error other than
// a missing directory is returned as such.
func hasCommit(dir string) (bool, error) {
	gens, err := commitGens(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return len(gens) > 0, err
}

// List returns the shards present under a data directory.
func List(dataDir string) ([]ShardID, error) {
	root := filepath.Join(dataDir, "shards")
	indices, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []ShardID
	for _, ix := range indices {
		if !ix.IsDir() || ValidateName(ix.Name()) != nil {
			continue
		}
		shards, err := os.ReadDir(filepath.Join(root, ix.Name()))
		if err != nil {
			return nil, err
		}
		for _, s := range shards {
			n, err := strconv.Atoi(s.Name())
			if err != nil || !s.IsDir() {
				continue
			}
			// A shard whose directory cannot be read now is listed: Open
			// reports it unavailable rather than it going unseen.
			id := ShardID{Index: ix.Name(), Shard: n}
			if ok, err := hasCommit(Dir(dataDir, id)); ok || err != nil {
				out = append(out, id)
			}
		}
	}
	return out, nil
}

// ReadMetadata reads the newest valid commit of a shard without opening it
// (no lock, no cleanup), for offline tools.
func ReadMetadata(dataDir string, id ShardID) (Metadata, error) {
	if err := id.Validate(); err != nil {
		return Metadata{}, err
	}
	c, _, err := loadNewestCommit(Dir(dataDir, id))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNoCommit) {
		return Metadata{}, fmt.Errorf("%w: %s in %s", ErrNotFound, id, dataDir)
	}
	if err != nil {
		return Metadata{}, err
	}
	return c.metadata(), nil
}

func (o *Options) defaults() {
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 5 * time.Minute
	}
	if o.MaxSegmentBytes <= 0 {
		o.MaxSegmentBytes = 256 << 20
	}
	if o.FlushBytes == 0 {
		o.FlushBytes = 32 << 20
	}
	if o.Failpoint == nil {
		o.Failpoint = func(string) {}
	}
	if o.Fault == nil {
		o.Fault = func(string, string) error { return nil }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Open opens (or with Options.Create, creates) a shard. It cleans what a
// crash left: staging directories (unless Options.KeepStaging), temp files, files no commit references
// and older commit points; then it replays the op log above the commit's
// local checkpoint.
func Open(dataDir string, id ShardID, opts Options) (*Shard, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	opts.defaults()
	dir := Dir(dataDir, id)
	if !opts.Create {
		ok, err := hasCommit(dir)
		if err != nil {
			return nil, unavailable(id, err)
		}
		if !ok {
			return nil, fmt.Errorf("%w: %s in %s", ErrNotFound, id, dataDir)
		}
	}
	if err := fsutil.MkdirAllSync(dir, 0o755); err != nil {
		return nil, unavailable(id, fmt.Errorf("shardstore: create shard dir: %w", err))
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, unavailable(id, err)
	}
	s := &Shard{id: id, dir: dir, opts: opts, lock: lock, log: opts.Logger.With("shard", id.String()),
		memtable: map[string]*Op{}, pins: map[string]int{}, stagings: map[string]*Staging{}}
	s.settled.L = &s.mu
	if err := s.open(); err != nil {
		lock.Close()
		return nil, unavailable(id, err)
	}
	return s, nil
}

// unavailable marks an open error that is not proven damage (ErrCorrupt)
// as ErrUnavailable.
func unavailable(id ShardID, err error) error {
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, id, err)
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("shardstore: lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("shardstore: shard %s is open in another process: %w", dir, err)
	}
	return f, nil
}

func (s *Shard) open() error {
	if !s.opts.KeepStaging {
		if err := os.RemoveAll(filepath.Join(s.dir, stagingDir)); err != nil {
			return fmt.Errorf("shardstore: remove staging left by a crash: %w", err)
		}
	}
	if removed, err := fsutil.RemoveTemps(s.dir); err != nil {
		return err
	} else if len(removed) > 0 {
		s.log.Info("removed temp files left by a crash", "files", removed)
	}
	c, highest, err := loadNewestCommit(s.dir)
	if errors.Is(err, ErrNoCommit) && s.opts.Uncommitted {
		// Generation 0 is never written: the first publish writes 1.
		c = &commitPoint{Data: CommitData{MaxSeqNo: seqno.NoOpsPerformed, LocalCheckpoint: seqno.NoOpsPerformed,
			GlobalCheckpoint: seqno.NoOpsPerformed, WriterVersion: WriterVersion, FormatVersion: FormatVersion}}
	} else if errors.Is(err, ErrNoCommit) {
		c = &commitPoint{Generation: 1, OplogEpoch: 1, Data: CommitData{
			HistoryUUID: uuid.NewString(), MaxSeqNo: seqno.NoOpsPerformed, LocalCheckpoint: seqno.NoOpsPerformed,
			GlobalCheckpoint: seqno.NoOpsPerformed, MinRetainedSeqNo: 0, PrimaryTerm: 1,
			WriterVersion: WriterVersion, FormatVersion: FormatVersion,
		}}
		if err := writeCommit(s.dir, c); err != nil {
			return err
		}
		highest = c.Generation
	} else if err != nil {
		return err
	}
	for _, f := range c.Files {
		seg, err := openSegment(filepath.Join(s.dir, f.Name), f)
		if err != nil {
			return err
		}
		s.segments = append(s.segments, seg)
	}
	s.commit = c
	s.lastGen = highest
	s.term = c.Data.PrimaryTerm
	s.history = c.Data.HistoryUUID
	s.globalCP = c.Data.GlobalCheckpoint
	s.tracker = seqno.NewCheckpointTracker(c.Data.MaxSeqNo, c.Data.LocalCheckpoint)
	s.loadTermsLocked(c)
	if err := s.removeUnreferenced(); err != nil {
		return err
	}
	if err := removeOtherEpochs(s.dir, c.OplogEpoch); err != nil {
		return err
	}
	if s.oplog, err = s.openEpoch(c); err != nil {
		return err
	}
	s.leases, err = seqno.OpenLeases(filepath.Join(s.dir, leasesFile), seqno.LeaseOptions{
		TTL: s.opts.LeaseTTL, Now: s.opts.Now, Floor: c.Data.MinRetainedSeqNo,
	})
	if err != nil {
		s.oplog.close()
		return err
	}
	if s.replayed > 0 {
		s.log.Info("replayed the op log above the commit's local checkpoint", "ops", s.replayed, "checkpoint", c.Data.LocalCheckpoint)
	}
	if s.opts.FlushBytes > 0 && s.memBytes >= s.opts.FlushBytes {
		// A long op log tail replayed: commit it rather than hold it.
		return s.flushLocked()
	}
	return nil
}

// openEpoch opens the op log of commit c, replaying the ops above its local
// checkpoint into the memtable (the ones at or below it are in segments).
func (s *Shard) openEpoch(c *commitPoint) (*opLog, error) {
	s.replayed = 0
	l, err := openOpLog(epochDir(s.dir, c.OplogEpoch), &s.opts, func(op *Op) {
		s.noteTermLocked(op.PrimaryTerm, op.SeqNo)
		if op.SeqNo > c.Data.LocalCheckpoint {
			s.applyMemLocked(op)
			s.tracker.MarkProcessed(op.SeqNo)
			s.replayed++
		} else {
			s.tracker.AdvanceMaxSeqNo(op.SeqNo)
		}
	})
	if err != nil {
		return nil, err
	}
	for _, r := range l.repaired {
		s.log.Warn("op log repaired at its tail", "repair", r)
	}
	return l, nil
}

// removeUnreferenced deletes segment files and commit points that neither
// the current commit nor a pin references. Unknown files are left alone.
func (s *Shard) removeUnreferenced() error {
	_, err := s.removeUnreferencedNames()
	return err
}

// removeUnreferencedNames is removeUnreferenced returning what it removed.
func (s *Shard) removeUnreferencedNames() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("shardstore: list shard dir: %w", err)
	}
	live := make(map[string]bool, len(s.commit.Files))
	for _, f := range s.commit.Files {
		live[f.Name] = true
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		g, isCommit := parseCommitName(name)
		stale := isCommit && g < s.commit.Generation ||
			strings.HasPrefix(name, segNamePrefix) && !live[name] && s.pins[name] == 0
		if !stale {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("shardstore: remove %s: %w", name, err)
		}
		removed = append(removed, name)
	}
	if len(removed) > 0 {
		s.log.Debug("removed unreferenced files", "files", removed)
	}
	return removed, nil
}

// ID returns the shard's id.
func (s *Shard) ID() ShardID { return s.id }

// Committed reports whether the shard has a commit on disk: false for a
// shard opened Uncommitted until a Staging publishes its first commit.
func (s *Shard) Committed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.commit.Generation > 0
}

// errUncommitted is what an operation that needs a commit answers on a
// shard that has none yet.
func (s *Shard) errUncommitted() error {
	return fmt.Errorf("%w: shard %s is being created by a recovery and exists once it publishes", ErrNoCommit, s.id)
}

// Path returns the shard's directory.
func (s *Shard) Path() string { return s.dir }

// Leases returns the shard's retention leases.
func (s *Shard) Leases() *seqno.Leases { return s.leases }

// Close flushes the op log and releases the shard; it does not flush the
// memtable (the op log holds its ops).
func (s *Shard) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.settled.Broadcast() // writes waiting for a promotion see it closed
	for _, st := range s.stagings {
		st.mu.Lock()
		if st.ops != nil {
			st.ops.close()
		}
		st.done = true
		st.mu.Unlock()
		os.RemoveAll(st.dir)
	}
	err := s.oplog.close()
	return errors.Join(err, s.lock.Close())
}

// memEntryBytes estimates the memory one memtable entry takes: its key and
// value plus the map slot and the Op around them.
func memEntryBytes(op *Op) int64 { return int64(len(op.Key)+len(op.Value)) + 128 }

// applyMemLocked puts op into the memtable unless it holds a newer version;
// a no-op changes no document.
func (s *Shard) applyMemLocked(op *Op) {
	if op.Kind == OpNoOp {
		return
	}
	if cur, ok := s.memtable[op.Key]; ok {
		if !op.newer(cur) {
			return
		}
		s.memBytes -= memEntryBytes(cur)
	}
	cp := *op
	s.memtable[op.Key] = &cp
	s.memBytes += memEntryBytes(op)
}

// Doc is a document to index.
type Doc struct {
	Key   string
	Value []byte
}

// IndexBatch indexes docs as the primary: each gets the next seqno under the
// current primary term. It returns once the ops are durable (one fsync for
// the batch, shared with concurrent callers).
func (s *Shard) IndexBatch(ctx context.Context, docs []Doc) ([]Op, error) {
	ops := make([]Op, len(docs))
	for i, d := range docs {
		if err := validateKey(d.Key); err != nil {
			return nil, err
		}
		ops[i] = Op{Key: d.Key, Value: d.Value, Kind: OpIndex}
	}
	return s.write(ctx, ops, true)
}

// Index indexes one document as the primary.
func (s *Shard) Index(ctx context.Context, key string, value []byte) (Op, error) {
	ops, err := s.IndexBatch(ctx, []Doc{{key, value}})
	if err != nil {
		return Op{}, err
	}
	return ops[0], nil
}

// Delete deletes one document as the primary.
func (s *Shard) Delete(ctx context.Context, key string) (Op, error) {
	if err := validateKey(key); err != nil {
		return Op{}, err
	}
	ops, err := s.write(ctx, []Op{{Key: key, Kind: OpDelete}}, true)
	if err != nil {
		return Op{}, err
	}
	return ops[0], nil
}

// Apply applies ops generated by a primary (as a replica, or when replaying
// a recovery), in any order; ops already processed are skipped. It returns
// once they are durable. Ops keep the term they carry; the copy's own term
// is never raised from them. A batch whose newest term is newer than any
// the copy knows, while the copy holds ops above its global checkpoint, is
// refused whole with ErrStaleTerm (terms.go).
func (s *Shard) Apply(ctx context.Context, ops []Op) error {
	for i := range ops {
		if err := validateOp(&ops[i]); err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
	}
	_, err := s.write(ctx, ops, false)
	return err
}

func validateKey(k string) error {
	if k == "" || len(k) > 4096 {
		return fmt.Errorf("shardstore: document key must be 1 to 4096 bytes, got %d", len(k))
	}
	return nil
}

func (s *Shard) write(ctx context.Context, ops []Op, primary bool) ([]Op, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	for s.promoting > 0 && !s.closed {
		s.settled.Wait()
	}
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if !primary {
		if err := s.checkTermsLocked(ops); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	todo := ops[:0:0]
	for i := range ops {
		if primary {
			ops[i].SeqNo = s.tracker.Generate()
			ops[i].PrimaryTerm = s.term
		} else if s.tracker.IsProcessed(ops[i].SeqNo) {
			continue
		}
		todo = append(todo, ops[i])
	}
	oplog := s.oplog // a publish may replace it once we unlock
	ticket, err := oplog.append(todo)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.inflight++
	for i := range todo {
		s.noteTermLocked(todo[i].PrimaryTerm, todo[i].SeqNo)
		if !primary {
			s.tracker.AdvanceMaxSeqNo(todo[i].SeqNo)
		}
	}
	s.mu.Unlock()
	// The ops reach the memtable (become visible, and part of the next
	// commit) only once their fsync returned: after an fsync error they
	// are neither (the op log drops them too, see cutBackLocked).
	err = oplog.sync(ticket)
	s.opts.Failpoint("write.synced")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	s.settled.Broadcast()
	if err != nil {
		return nil, err
	}
	if s.closed || s.oplog != oplog {
		// Closed (the op log replays them at the next open) or replaced by
		// a publish (its content replaces them, as ops applied before it).
		return ops, nil
	}
	s.contentVersion.Add(1)
	for i := range todo {
		s.applyMemLocked(&todo[i])
		s.tracker.MarkProcessed(todo[i].SeqNo)
	}
	if s.opts.FlushBytes > 0 && s.memBytes >= s.opts.FlushBytes {
		if err := s.flushLocked(); err != nil {
			return nil, err
		}
	}
	return ops, nil
}

// Get returns the live value of key.
func (s *Shard) Get(key string) (value []byte, seq seqno.SeqNo, found bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *Op
	if op, ok := s.memtable[key]; ok {
		best = op
	}
	for _, seg := range s.segments {
		e, ok, err := seg.get(key)
		if err != nil {
			return nil, 0, false, err
		}
		if ok && (best == nil || e.newer(best)) {
			best = &e
		}
	}
	if best == nil || best.Kind == OpDelete {
		return nil, seqno.Unassigned, false, nil
	}
	return best.Value, best.SeqNo, true, nil
}

// Scan calls fn for every live document in key order with its seqno.
func (s *Shard) Scan(fn func(key string, value []byte, seq seqno.SeqNo) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.scanLocked(fn)
}

// scanMergeMax bounds the segments the streaming scan opens at once; a
// shard with more is scanned one segment at a time (scanBySegment).
const scanMergeMax = 256

// scanLocked calls fn for every live document in key order.
func (s *Shard) scanLocked(fn func(key string, value []byte, seq seqno.SeqNo) error) error {
	return s.view().scan(fn)
}

func (s *Shard) scanMerged(fn func(key string, value []byte, seq seqno.SeqNo) error) error {
	return s.view().scanMerged(fn)
}

func (s *Shard) scanBySegment(fn func(key string, value []byte, seq seqno.SeqNo) error) error {
	return s.view().scanBySegment(fn)
}

// view is the shard's current content (s.mu held while it is scanned).
func (s *Shard) view() view { return view{segs: s.segments, mem: s.memtable} }

// view is content to scan: segments and, above them, ops by key (the
// memtable, or the ops a digest read from the op log). A view is read
// only; whoever scans it keeps its segments' files and its map unchanged.
type view struct {
	segs []*segment
	mem  map[string]*Op
}

// scan calls fn for every live document in key order.
func (v view) scan(fn func(key string, value []byte, seq seqno.SeqNo) error) error {
	if len(v.segs) > scanMergeMax {
		return v.scanBySegment(fn)
	}
	return v.scanMerged(fn)
}

// scanMerged streams a k-way merge of the segments and the ops above
// them: one sequential pass over each file.
func (v view) scanMerged(fn func(key string, value []byte, seq seqno.SeqNo) error) error {
	mem := make([]string, 0, len(v.mem))
	for k := range v.mem {
		mem = append(mem, k)
	}
	slices.Sort(mem)
	emit := func(op *Op) error {
		if op.Kind == OpDelete {
			return nil
		}
		return fn(op.Key, op.Value, op.SeqNo)
	}
	// flushMem emits the memtable's keys that sort before key (all when
	// key is nil).
	flushMem := func(key *string) error {
		for len(mem) > 0 && (key == nil || mem[0] < *key) {
			if err := emit(v.mem[mem[0]]); err != nil {
				return err
			}
			mem = mem[1:]
		}
		return nil
	}
	bufSize := max(16<<10, min(1<<20, (32<<20)/max(1, len(v.segs))))
	err := mergeIterate(v.segs, bufSize, func(op *Op) error {
		if err := flushMem(&op.Key); err != nil {
			return err
		}
		if len(mem) > 0 && mem[0] == op.Key {
			m := v.mem[mem[0]]
			mem = mem[1:]
			if m.newer(op) {
				return emit(m)
			}
		}
		return emit(op)
	})
	if err != nil {
		return err
	}
	return flushMem(nil)
}

// winner locates the newest version of a key found so far.
type winner struct {
	seq     seqno.SeqNo
	seg     int32 // index into segments, -1 for the memtable
	deleted bool
	off     int64
}

// scanBySegment resolves the newest version of every key one segment at a
// time (so at most one segment file is open: a shard may hold more segments
// than the process may open files), then reads the live values in key
// order.
func (v view) scanBySegment(fn func(key string, value []byte, seq seqno.SeqNo) error) error {
	wins := make(map[string]winner, len(v.mem))
	for i, seg := range v.segs {
		err := seg.iterate(64<<10, func(e *Op, off int64) error {
			if w, ok := wins[e.Key]; !ok || e.SeqNo > w.seq {
				wins[e.Key] = winner{seq: e.SeqNo, seg: int32(i), deleted: e.Kind == OpDelete, off: off}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for k, op := range v.mem {
		if w, ok := wins[k]; !ok || op.SeqNo > w.seq {
			wins[k] = winner{seq: op.SeqNo, seg: -1, deleted: op.Kind == OpDelete}
		}
	}
	keys := make([]string, 0, len(wins))
	for k, w := range wins {
		if !w.deleted {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	files := make(map[int32]*os.File)
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var e Op
	for _, k := range keys {
		w := wins[k]
		if w.seg < 0 {
			if err := fn(k, v.mem[k].Value, w.seq); err != nil {
				return err
			}
			continue
		}
		f := files[w.seg]
		if f == nil {
			if len(files) >= 256 {
				for i, of := range files {
					of.Close()
					delete(files, i)
				}
			}
			var err error
			if f, err = os.Open(v.segs[w.seg].path); err != nil {
				return fmt.Errorf("shardstore: scan: %w", err)
			}
			files[w.seg] = f
		}
		if err := readEntryAt(f, w.off, &e); err != nil {
			return readFailure(err, "segment %s at %d", v.segs[w.seg].meta.Name, w.off)
		}
		if err := fn(k, e.Value, w.seq); err != nil {
			return err
		}
	}
	return nil
}

// Stats are a shard's live numbers.
type Stats struct {
	ID               ShardID     `json:"id"`
	HistoryUUID      string      `json:"history_uuid"`
	PrimaryTerm      uint64      `json:"primary_term"`
	Seq              seqno.Stats `json:"seqno"`
	MinRetainedSeqNo seqno.SeqNo `json:"min_retained_seqno"`
	Generation       uint64      `json:"generation"`
	Segments         int         `json:"segments"`
	SegmentBytes     int64       `json:"segment_bytes"`
	MemtableDocs     int         `json:"memtable_docs"`
	Leases           int         `json:"leases"`
}

// Stats returns the shard's live numbers (seqnos include ops not yet flushed).
func (s *Shard) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var bytes int64
	for _, seg := range s.segments {
		bytes += seg.meta.Length
	}
	return Stats{
		ID: s.id, HistoryUUID: s.history, PrimaryTerm: s.term,
		Seq:              seqno.Stats{MaxSeqNo: s.tracker.MaxSeqNo(), LocalCheckpoint: s.tracker.Checkpoint(), GlobalCheckpoint: s.globalCP},
		MinRetainedSeqNo: s.leases.Floor(), Generation: s.commit.Generation, Segments: len(s.segments),
		SegmentBytes: bytes, MemtableDocs: len(s.memtable), Leases: len(s.leases.List()),
	}
}

// Metadata returns the current commit's files and user data.
func (s *Shard) Metadata() Metadata {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.commit.metadata()
}

// RetainedOps is the range of ops the op log can still serve: from the
// retention floor to the max seqno.
func (s *Shard) RetainedOps() seqno.Range {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return seqno.Range{From: s.leases.Floor(), To: s.tracker.MaxSeqNo()}
}

// AvgOpBytes is the mean size of the ops the op log holds, for planners
// estimating what an op replay reads off this copy (0 when it holds none).
func (s *Shard) AvgOpBytes() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.oplog.avgOpBytes()
}

// SetGlobalCheckpoint records the global checkpoint the primary computed; it
// is persisted with the next commit and never moves back.
func (s *Shard) SetGlobalCheckpoint(cp seqno.SeqNo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.globalCP = max(s.globalCP, min(cp, s.tracker.Checkpoint()))
}

// ReadOps calls fn for every op with a seqno in r, in seqno order. It fails
// with seqno.ErrCompacted when r starts below what the op log retains.
// Seqnos in r that were never processed (gaps above the checkpoint) are
// simply absent.
func (s *Shard) ReadOps(r seqno.Range, fn func(Op) error) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if r.Empty() {
		return nil
	}
	s.mu.RLock()
	floor, maxSeq, closed := s.leases.Floor(), s.tracker.MaxSeqNo(), s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if r.From < floor {
		return fmt.Errorf("%w: ops from %v asked, %s retains from %v", seqno.ErrCompacted, r.From, s.id, floor)
	}
	if r.To > maxSeq {
		return fmt.Errorf("shardstore: ops up to %v asked, %s has seen only up to %v", r.To, s.id, maxSeq)
	}
	return s.oplog.read(r, func(op *Op) error { return fn(*op) })
}

// Flush writes the memtable into a new segment and publishes a commit point
// holding the file list and the seqno user data.
func (s *Shard) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

func (s *Shard) nextGen() uint64 {
	s.lastGen = max(s.lastGen, s.commit.Generation) + 1
	return s.lastGen
}

func (s *Shard) segmentPath() (string, error) {
	for {
		s.nextSegment++
		name := fmt.Sprintf("%s%08d_%s", segNamePrefix, s.lastGen+s.nextSegment, strings.ReplaceAll(uuid.NewString()[:13], "-", ""))
		p := filepath.Join(s.dir, name)
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p, nil
		}
	}
}

func (s *Shard) flushLocked() error {
	if s.closed {
		return ErrClosed
	}
	if s.commit.Generation == 0 {
		return s.errUncommitted()
	}
	// Rolling the op log makes every appended op durable first, so the
	// segment never holds an op the log could lose.
	nextGen := s.oplog.nextGen()
	if err := s.oplog.roll(nextGen); err != nil {
		return err
	}
	checkpoint := s.tracker.Checkpoint()
	files := append([]FileMeta(nil), s.commit.Files...)
	var newSeg *segment
	if len(s.memtable) > 0 {
		keys := make([]string, 0, len(s.memtable))
		for k := range s.memtable {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		path, err := s.segmentPath()
		if err != nil {
			return err
		}
		sw, err := createSegment(path)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := sw.add(s.memtable[k]); err != nil {
				sw.abort()
				return err
			}
		}
		meta, err := sw.finish()
		if err != nil {
			sw.abort()
			return err
		}
		if newSeg, err = openSegment(path, meta); err != nil {
			return err
		}
		files = append(files, meta)
		s.opts.Failpoint("flush.segment-written")
	}
	if err := fsutil.SyncDir(s.dir); err != nil {
		return err
	}
	// Ops below the lowest live lease and below checkpoint+1-RetainOps may
	// go; never ops above the checkpoint (they rebuild the memtable).
	floor := s.leases.AdvanceFloor(checkpoint + 1 - seqno.SeqNo(s.opts.RetainOps))
	next := &commitPoint{
		Generation: s.nextGen(),
		Files:      files,
		Data:       s.commitDataLocked(checkpoint, floor),
		OplogEpoch: s.commit.OplogEpoch,
		Terms:      s.termsLocked(),
	}
	s.opts.Failpoint("flush.before-commit")
	if err := writeCommit(s.dir, next); err != nil {
		return err
	}
	s.opts.Failpoint("flush.after-commit")
	s.commit = next
	if newSeg != nil {
		s.segments = append(s.segments, newSeg)
	}
	clear(s.memtable)
	s.memBytes = 0
	return s.afterCommitLocked()
}

func (s *Shard) commitDataLocked(checkpoint, floor seqno.SeqNo) CommitData {
	gcp := min(s.globalCP, checkpoint)
	return CommitData{
		HistoryUUID: s.history, MaxSeqNo: s.tracker.MaxSeqNo(), LocalCheckpoint: checkpoint,
		GlobalCheckpoint: gcp, MinRetainedSeqNo: floor, PrimaryTerm: s.term,
		WriterVersion: WriterVersion, FormatVersion: FormatVersion, MaxTermAboveGlobalCheckpoint: s.maxTermAboveLocked(gcp),
	}
}

// afterCommitLocked deletes what the new commit no longer needs: old commit
// points, unreferenced segments, op log generations below the floor.
func (s *Shard) afterCommitLocked() error {
	err := s.removeUnreferenced()
	cp, floor := s.commit.Data.LocalCheckpoint, s.commit.Data.MinRetainedSeqNo
	return errors.Join(err, s.oplog.dropGens(func(g *oplogGen) bool {
		return len(g.locs) == 0 || g.maxSeq < floor && g.maxSeq <= cp
	}))
}

// Merge rewrites every segment, and the memtable, into new segments with the
// same logical content: the newest version of each key, tombstones dropped
// when no older version can still arrive (at or below the local checkpoint).
func (s *Shard) Merge() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		return err
	}
	if len(s.segments) == 0 {
		return nil
	}
	checkpoint := s.commit.Data.LocalCheckpoint
	out, err := s.mergeSegments(s.segments, func(e *Op) bool {
		return e.Kind == OpDelete && e.SeqNo <= checkpoint
	})
	if err != nil {
		return err
	}
	if err := fsutil.SyncDir(s.dir); err != nil {
		return err
	}
	files := make([]FileMeta, len(out))
	for i, seg := range out {
		files[i] = seg.meta
	}
	next := &commitPoint{
		Generation: s.nextGen(), Files: files,
		Data: s.commit.Data, OplogEpoch: s.commit.OplogEpoch, Terms: s.commit.Terms,
	}
	s.opts.Failpoint("merge.before-commit")
	if err := writeCommit(s.dir, next); err != nil {
		return err
	}
	s.commit = next
	s.segments = out
	return s.afterCommitLocked()
}

// mergeFanIn bounds the files a merge pass holds open at once.
const mergeFanIn = 128

// mergeSegments merges segs into new segments of at most MaxSegmentBytes,
// keeping the newest version of each key and dropping it when drop says so.
// More than mergeFanIn inputs are merged in passes (tombstones are dropped
// only in the last pass, which sees every version).
func (s *Shard) mergeSegments(segs []*segment, drop func(*Op) bool) ([]*segment, error) {
	var created []*segment
	fail := func(err error) ([]*segment, error) {
		for _, seg := range created {
			os.Remove(seg.path)
		}
		return nil, err
	}
	for len(segs) > mergeFanIn {
		var next []*segment
		for i := 0; i < len(segs); i += mergeFanIn {
			group := segs[i:min(i+mergeFanIn, len(segs))]
			out, err := s.mergePass(group, func(*Op) bool { return false }, 1<<62)
			if err != nil {
				return fail(err)
			}
			created = append(created, out...)
			next = append(next, out...)
		}
		segs = next
	}
	out, err := s.mergePass(segs, drop, s.opts.MaxSegmentBytes)
	if err != nil {
		return fail(err)
	}
	s.opts.Failpoint("merge.outputs-written")
	for _, seg := range created { // intermediate outputs
		os.Remove(seg.path)
	}
	return out, nil
}

func (s *Shard) mergePass(segs []*segment, drop func(*Op) bool, maxBytes int64) (out []*segment, err error) {
	var sw *segmentWriter
	defer func() {
		if err != nil {
			if sw != nil {
				sw.abort()
			}
			for _, seg := range out {
				os.Remove(seg.path)
			}
		}
	}()
	finish := func() error {
		path := sw.f.Name()
		meta, err := sw.finish()
		sw = nil
		if err != nil {
			os.Remove(path)
			return err
		}
		seg, err := openSegment(path, meta)
		if err != nil {
			return err
		}
		out = append(out, seg)
		return nil
	}
	bufSize := max(4<<10, min(1<<20, (32<<20)/len(segs)))
	err = mergeIterate(segs, bufSize, func(e *Op) error {
		if drop(e) {
			return nil
		}
		if sw == nil {
			path, err := s.segmentPath()
			if err != nil {
				return err
			}
			if sw, err = createSegment(path); err != nil {
				return err
			}
		}
		if err := sw.add(e); err != nil {
			return err
		}
		if int64(sw.size()) >= maxBytes {
			return finish()
		}
		return nil
	})
	if err == nil && sw != nil {
		err = finish()
	}
	return out, err
}

// mergeIterate calls fn with the newest version of every key across segs,
// in key order.
func mergeIterate(segs []*segment, bufSize int, fn func(*Op) error) error {
	its := make([]*segmentIter, 0, len(segs))
	for _, seg := range segs {
		f, err := os.Open(seg.path)
		if err != nil {
			return fmt.Errorf("shardstore: merge: %w", err)
		}
		defer f.Close()
		it := newSegmentIter(f, seg, bufSize)
		if it.next() {
			its = append(its, it)
		} else if it.err != nil {
			return it.err
		}
	}
	for len(its) > 0 {
		sort.Slice(its, func(i, j int) bool { return its[i].cur.Key < its[j].cur.Key })
		key := its[0].cur.Key
		best := its[0].cur
		keep := its[:0]
		for _, it := range its {
			if it.cur.Key == key {
				if it.cur.newer(&best) {
					best = it.cur
				}
				if !it.next() {
					if it.err != nil {
						return it.err
					}
					continue
				}
			}
			keep = append(keep, it)
		}
		its = keep
		if err := fn(&best); err != nil {
			return err
		}
	}
	return nil
}

// CommitRef pins one commit's files: they stay on disk, even after newer
// commits, until Release.
type CommitRef struct {
	s    *Shard
	meta Metadata
	once sync.Once
}

// AcquireCommit flushes nothing and pins the current commit.
func (s *Shard) AcquireCommit() (*CommitRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.commit.Generation == 0 {
		return nil, s.errUncommitted()
	}
	meta := s.commit.metadata()
	for _, f := range meta.Files {
		s.pins[f.Name]++
	}
	return &CommitRef{s: s, meta: meta}, nil
}

// Metadata returns the pinned commit's files and user data.
func (r *CommitRef) Metadata() Metadata { return r.meta }

// Open opens one file of the pinned commit for reading.
func (r *CommitRef) Open(name string) (*os.File, FileMeta, error) {
	if err := ValidateName(name); err != nil {
		return nil, FileMeta{}, err
	}
	fm, ok := r.meta.Lookup(name)
	if !ok {
		return nil, FileMeta{}, fmt.Errorf("%w: file %s is not in commit %d of %s", ErrNotFound, name, r.meta.Generation, r.s.id)
	}
	f, err := os.Open(filepath.Join(r.s.dir, name))
	if err != nil {
		return nil, FileMeta{}, fmt.Errorf("shardstore: open %s: %w", name, err)
	}
	return f, fm, nil
}

// Release unpins the commit; files no commit needs any more are deleted.
func (r *CommitRef) Release() error {
	var err error
	r.once.Do(func() {
		s := r.s
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, f := range r.meta.Files {
			if s.pins[f.Name]--; s.pins[f.Name] <= 0 {
				delete(s.pins, f.Name)
			}
		}
		if !s.closed {
			err = s.removeUnreferenced()
		}
	})
	return err
}

// Pinned reports whether a file is held by a CommitRef (for cleanup).
func (s *Shard) Pinned(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.pins[name] > 0
}

var _ io.Closer = (*Shard)(nil)
