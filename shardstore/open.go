package shardstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/google/uuid"

	"github.com/recoverd/recoverd/internal/fsutil"
	"github.com/recoverd/recoverd/seqno"
)

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
			return nil, fmt.Errorf("%w: shard %s in %s", ErrNotFound, id, dataDir)
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
	s.touch()
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
	} else if left, err := os.ReadDir(filepath.Join(s.dir, stagingDir)); err == nil && len(left) > 0 {
		s.leftStaging = true // for a recovery that resumes, or Sweep
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
			cp := *op // op is the reader's, reused for the next record
			s.applyMemLocked(&cp)
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
