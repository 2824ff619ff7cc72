package shardstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/recoverd/recoverd/seqno"
)

// Digest is DigestAt(ctx, nil, seqno.Unassigned): the digest of the
// shard's whole content.
func (s *Shard) Digest(ctx context.Context) (string, error) {
	d, _, err := s.DigestAt(ctx, nil, seqno.Unassigned)
	return d, err
}

// DigestAt is a SHA-256 over every live document (key, seqno, value), in
// key order, of the content the ops at or below upTo make (upTo Unassigned:
// the max seqno seen): for each key its op with the highest seqno not
// above upTo, unless that op deletes it. Two copies that hold the same ops
// up to upTo have the same digest, whatever their physical files and
// whatever either holds above upTo: a recovery compares its copy with the
// source at the seqno the copy reached while the source goes on indexing.
//
// It reads the segments of a commit (base, a pinned commit; nil: the
// current one, pinned for the scan) and, from the op log, the ops above
// that commit's local checkpoint up to upTo. The shard's lock is held only
// to pin them: writes, flushes and merges go on while the digest runs, and
// ctx cancels it. The commit must hold no op above upTo and the op log
// must still hold the ops above its checkpoint; otherwise the content at
// upTo is gone from this copy and the error is seqno.ErrCompacted. It
// returns the digest and the seqno it covers.
func (s *Shard) DigestAt(ctx context.Context, base *CommitRef, upTo seqno.SeqNo) (digest string, at seqno.SeqNo, err error) {
	s.touch()
	if base != nil && base.s != s {
		return "", upTo, fmt.Errorf("shardstore: digest of %s with a commit of %s", s.id, base.s.id)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", upTo, ErrClosed
	}
	var meta Metadata
	if base != nil {
		meta = base.Metadata()
	} else {
		meta = s.commit.metadata()
		for _, f := range meta.Files {
			s.pins[f.Name]++
		}
		defer s.unpin(meta.Files)
	}
	if upTo == seqno.Unassigned {
		upTo = s.tracker.MaxSeqNo()
	}
	version, oplog, floor := s.contentVersion.Load(), s.oplog, s.leases.Floor()
	if d, ok := s.cachedDigestLocked(version, upTo); ok {
		s.mu.Unlock()
		return d, upTo, nil
	}
	ops := seqno.Range{From: meta.Commit.LocalCheckpoint + 1, To: upTo}
	switch {
	case meta.Commit.MaxSeqNo > upTo:
		s.mu.Unlock()
		return "", upTo, fmt.Errorf("%w: %s: commit %d holds ops up to %v, past %v: this copy no longer has its content at %v",
			seqno.ErrCompacted, s.id, meta.Generation, meta.Commit.MaxSeqNo, upTo, upTo)
	case !ops.Empty() && ops.From < floor:
		s.mu.Unlock()
		return "", upTo, fmt.Errorf("%w: %s: ops from %v needed on top of commit %d, the op log holds them from %v",
			seqno.ErrCompacted, s.id, ops.From, meta.Generation, floor)
	}
	release := oplog.hold(ops.From)
	defer release()
	open := make(map[string]*segment, len(s.segments))
	for _, seg := range s.segments {
		open[seg.meta.Name] = seg
	}
	s.mu.Unlock()

	v := view{mem: map[string]*Op{}}
	for _, f := range meta.Files {
		seg, ok := open[f.Name]
		if !ok || seg.meta != f { // a commit older than the current one
			var err error
			if seg, err = openSegment(filepath.Join(s.dir, f.Name), f); err != nil {
				return "", upTo, err
			}
		}
		v.segs = append(v.segs, seg)
	}
	if !ops.Empty() {
		err := oplog.read(ops, func(op *Op) error {
			if op.Kind == OpNoOp { // changes no document
				return ctx.Err()
			}
			if cur, ok := v.mem[op.Key]; !ok || newer(op, cur) {
				cp := *op
				v.mem[op.Key] = &cp
			}
			return ctx.Err()
		})
		if err != nil {
			return "", upTo, s.digestErr(oplog, err)
		}
	}
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	put := func(b []byte) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
		h.Write(b)
	}
	first := true
	err = v.scan(cancellable(ctx, func(key string, value []byte, seq seqno.SeqNo) error {
		if first {
			s.opts.Failpoint("digest.scan")
			first = false
		}
		put([]byte(key))
		h.Write(n[:binary.PutVarint(n[:], int64(seq))])
		put(value)
		return nil
	}))
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return "", upTo, s.digestErr(oplog, err)
	}
	d := hex.EncodeToString(h.Sum(nil))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.oplog != oplog {
		return "", upTo, s.digestErr(oplog, errors.New("shard content replaced"))
	}
	s.digestMu.Lock()
	s.digest, s.digestVersion, s.digestUpTo, s.digestOK = d, version, upTo, true
	s.digestMu.Unlock()
	return d, upTo, nil
}

// unpin drops the pins a digest took on files, and deletes those that no
// commit references any more (a flush or merge replaced them meanwhile).
func (s *Shard) unpin(files []FileMeta) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := make(map[string]bool, len(s.commit.Files))
	for _, f := range s.commit.Files {
		live[f.Name] = true
	}
	for _, f := range files {
		if s.pins[f.Name]--; s.pins[f.Name] > 0 {
			continue
		}
		delete(s.pins, f.Name)
		if !live[f.Name] && !s.closed {
			if err := os.Remove(filepath.Join(s.dir, f.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("remove a segment no commit references", "file", f.Name, "error", err)
			}
		}
	}
}

// cachedDigestLocked returns the digest computed at upTo when no op was
// applied and nothing published since (flushes and merges do not change
// the content).
func (s *Shard) cachedDigestLocked(version uint64, upTo seqno.SeqNo) (string, bool) {
	s.digestMu.Lock()
	defer s.digestMu.Unlock()
	return s.digest, s.digestOK && s.digestVersion == version && s.digestUpTo == upTo
}

// digestErr says when a digest failed because a publish replaced the
// shard's content under it.
func (s *Shard) digestErr(oplog *opLog, err error) error {
	s.mu.RLock()
	replaced := s.oplog != oplog
	s.mu.RUnlock()
	if replaced {
		return fmt.Errorf("shardstore: digest of %s: a publish replaced its content meanwhile: %w", s.id, err)
	}
	return err
}
