package shardstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/recoverd/recoverd/internal/fsutil"
	"github.com/recoverd/recoverd/seqno"
)

// Flush writes the memtable into a new segment and publishes a commit point
// holding the file list and the seqno user data.
func (s *Shard) Flush() error {
	s.touch()
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
		ops := s.memOps // every key once, in the order they came
		if s.memUnsorted {
			slices.SortFunc(ops, func(a, b *Op) int { return strings.Compare(a.Key, b.Key) })
			s.memUnsorted = false
		}
		path, err := s.segmentPath()
		if err != nil {
			return err
		}
		sw, err := createSegment(path)
		if err != nil {
			return err
		}
		for _, op := range ops {
			if s.memUpdated {
				op = s.memtable[op.Key] // the key's newest op
			}
			if err := sw.add(op); err != nil {
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
	s.clearMemLocked()
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
