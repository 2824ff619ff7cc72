package shardstore

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// ErrClosed is returned by calls on a closed shard.
var ErrClosed = engine.ErrClosed

// ErrNotFound is returned when a shard does not exist on disk.
var ErrNotFound = engine.ErrNotFound

// ErrUnavailable is returned by Open when a shard cannot be opened now for
// a reason that proves nothing about its data: a read error (EIO, EMFILE,
// EACCES), its lock held by another process, a format newer than this
// build. Unlike ErrCorrupt it never justifies moving the shard aside: it
// stays where it is and opens again once the cause is gone.
var ErrUnavailable = engine.ErrUnavailable

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
	// that resume after a restart (they check what they staged);
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
	// CopyRetention is how long a copy's lease (HandOff) lives once the
	// copy acknowledges nothing (default 12 hours, Elasticsearch's peer
	// recovery retention lease period).
	CopyRetention time.Duration
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
	// "oplog.fsync") with the path of the file; an error
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
	memOps      []*Op // the memtable's first op of each key, in the order they came (applyMemLocked)
	memUnsorted bool  // memOps are not in key order: a flush sorts them
	memUpdated  bool  // a key of memOps has a newer op in the memtable
	memOpsHint  int   // the last memtable's key count (clearMemLocked)
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
	// (snapshot uploads, peer transfers) so their files outlive newer
	// commits; refs counts the references themselves.
	pins map[string]int
	refs int
	// leftStaging is set while staging directories an earlier process
	// kept (Options.KeepStaging) are there, neither in use nor swept: the
	// shard stays open (CloseIfIdle) for the recovery that resumes from one
	// or the Sweep that removes them.
	leftStaging bool
	stagings    map[string]*Staging
	// refused holds the recovery ids refusing primary writes (refuse.go).
	refused map[string]bool
	// replica is set once the copy takes a primary's ops (Apply) or a
	// recovery's publish, and cleared by a primary write or a promotion
	// (Replica); it is not durable: a copy is taken for a primary after a
	// restart until it applies a primary's ops.
	replica bool

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

	// touched is when a caller last used the shard (UnixNano): a write,
	// read, flush, pin or staging; CloseIfIdle leaves a shard touched
	// recently open.
	touched atomic.Int64

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
		return Metadata{}, fmt.Errorf("%w: shard %s in %s", ErrNotFound, id, dataDir)
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
	if o.CopyRetention <= 0 {
		o.CopyRetention = 12 * time.Hour
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

// Closed reports whether Close was called (a handle on a closed shard
// answers ErrClosed).
func (s *Shard) Closed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// Path returns the shard's directory.
func (s *Shard) Path() string { return s.dir }

// Replica reports whether the copy acts as a replica: its last write was a
// primary's ops applied to it (Apply) or a recovery's publish, not a
// primary write of its own (Index, Delete) or a promotion. A copy opened
// since the last of those is taken for a primary (the role is not durable).
func (s *Shard) Replica() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.replica
}

// Leases returns the shard's retention leases.
func (s *Shard) Leases() *seqno.Leases { return s.leases }

// Close flushes the op log and releases the shard; it does not flush the
// memtable (the op log holds its ops). The stagings in use end, their
// directories removed (Suspend keeps one).
func (s *Shard) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	stagings, err := s.closeLocked()
	s.mu.Unlock()
	// A staging's lock is taken before the shard's (Publish): it is
	// ended once the shard's lock is released, never under it.
	for _, st := range stagings {
		st.mu.Lock()
		if st.ops != nil {
			st.ops.close()
			st.ops = nil
		}
		st.done = true
		st.mu.Unlock()
		os.RemoveAll(st.dir)
	}
	return errors.Join(err, s.lock.Close())
}

// closeLocked marks the shard closed, closes its op log and takes its
// stagings for the caller to end.
func (s *Shard) closeLocked() ([]*Staging, error) {
	s.closed = true
	s.settled.Broadcast() // writes waiting for a promotion see it closed
	stagings := make([]*Staging, 0, len(s.stagings))
	for _, st := range s.stagings {
		stagings = append(stagings, st)
	}
	clear(s.stagings)
	return stagings, s.oplog.close()
}

// touch records a use of the shard (CloseIfIdle).
func (s *Shard) touch() { s.touched.Store(time.Now().UnixNano()) }

// Touched is when a caller last wrote, read, flushed, pinned or staged
// into the shard (its open, if none since).
func (s *Shard) Touched() time.Time { return time.Unix(0, s.touched.Load()) }

// CloseIfIdle closes the shard unless something uses it, or used it less
// than minIdle ago (Touched). Uses are: a commit pinned (AcquireCommit), a
// staging (or one an earlier process kept, until Sweep), a write or
// promotion in flight, a digest reading the op log, a retention lease
// (live, or expired and left for the Sweep that removes it), a refusal of
// writes, or no commit yet (a recovery's new target). It reports whether
// the shard is closed. A registry of many shards calls it to hold only
// those in use.
func (s *Shard) CloseIfIdle(minIdle time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return true, nil
	}
	if s.busyLocked() || time.Since(s.Touched()) < minIdle {
		return false, nil
	}
	_, err := s.closeLocked() // no staging: busy
	return true, errors.Join(err, s.lock.Close())
}

// busyLocked reports whether something uses the shard (CloseIfIdle).
func (s *Shard) busyLocked() bool {
	return s.commit.Generation == 0 || s.refs > 0 || len(s.stagings) > 0 || s.leftStaging || s.inflight > 0 ||
		s.promoting > 0 || len(s.refused) > 0 || s.oplog.held() || s.leases.Held() > 0
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

var _ io.Closer = (*Shard)(nil)
