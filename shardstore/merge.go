package shardstore

import (
	"fmt"
	"os"
	"sort"

	"github.com/recoverd/recoverd/internal/fsutil"
)

// Merge rewrites every segment, and the memtable, into new segments with the
// same logical content: the newest version of each key, tombstones dropped
// when no older version can still arrive (at or below the local checkpoint).
func (s *Shard) Merge() error {
	s.touch()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refusedLocked("merge"); err != nil {
		return err
	}
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
				if newer(&it.cur, &best) {
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
