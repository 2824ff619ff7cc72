package shardstore

import (
	"fmt"
	"maps"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// ErrStaleTerm is returned by Apply when the ops carry a primary term newer
// than any the copy knows while the copy holds ops above its global
// checkpoint: those ops came from an older primary and may differ from the
// new primary's under the same seqnos. The copy does not take the new
// term's ops until a recovery from the new primary has replaced it.
var ErrStaleTerm = engine.ErrStaleTerm

// noteTermLocked records that the copy holds an op of term at seqno s.
func (s *Shard) noteTermLocked(term uint64, seq seqno.SeqNo) {
	if cur, ok := s.termSeq[term]; !ok || seq > cur {
		s.termSeq[term] = seq
	}
}

// knownTermLocked is the newest primary term the copy knows: its own, or
// that of an op it holds or held.
func (s *Shard) knownTermLocked() uint64 {
	t := s.term
	for term := range s.termSeq {
		t = max(t, term)
	}
	return t
}

// maxTermAboveLocked is the highest term of the ops the copy holds above
// seqno gcp; 0 when it holds none.
func (s *Shard) maxTermAboveLocked(gcp seqno.SeqNo) uint64 {
	var t uint64
	for term, seq := range s.termSeq {
		if seq > gcp {
			t = max(t, term)
		}
	}
	return t
}

// checkTermsLocked refuses a batch of a primary's ops that starts a term
// newer than any the copy knows while the copy holds ops above its global
// checkpoint (the batch's newest term stands for the term of the primary
// that sent it). Elasticsearch rolls such a copy back to its global
// checkpoint; the reference engine keeps one version of each document and
// cannot undo an op in place, so the copy is left as it is, its commit
// saying truthfully which terms it holds above its global checkpoint, and
// a file-based recovery from the new primary replaces it (the planner does
// not continue it).
func (s *Shard) checkTermsLocked(ops []Op) error {
	var term uint64
	for i := range ops {
		term = max(term, ops[i].PrimaryTerm)
	}
	known, maxSeq := s.knownTermLocked(), s.tracker.MaxSeqNo()
	if term <= known || maxSeq <= s.globalCP {
		return nil
	}
	return fmt.Errorf("%w: %s holds ops %v..%v above its global checkpoint %v of primary terms up to %d; these ops are of term %d: recover the copy from the new primary",
		ErrStaleTerm, s.id, s.globalCP+1, maxSeq, s.globalCP, s.maxTermAboveLocked(s.globalCP), term)
}

// termsLocked is the term map to persist with a commit.
func (s *Shard) termsLocked() map[uint64]seqno.SeqNo {
	if len(s.termSeq) == 0 {
		return nil
	}
	return maps.Clone(s.termSeq)
}

// loadTermsLocked sets the term map from commit c: the map it persisted
// or, for a commit that has none (published by a recovery, or written
// before terms were recorded), what its user data says: an op of term
// MaxTermAboveGlobalCheckpoint just above the global checkpoint (placing
// it there never overstates the terms above a later global checkpoint).
func (s *Shard) loadTermsLocked(c *commitPoint) {
	s.termSeq = maps.Clone(c.Terms)
	if s.termSeq == nil {
		s.termSeq = map[uint64]seqno.SeqNo{}
	}
	if d := c.Data; c.Terms == nil && d.MaxTermAboveGlobalCheckpoint > 0 && d.MaxSeqNo > d.GlobalCheckpoint {
		s.termSeq[d.MaxTermAboveGlobalCheckpoint] = d.GlobalCheckpoint + 1
	}
}

// AdoptTerm raises the copy's primary term to term (never lowers it); the
// next commit persists it. A recovery calls it once the copy holds the
// source's history: the term of a copy changes only by Promote or by a
// recovery from a source of a newer term, never by the ops it receives.
func (s *Shard) AdoptTerm(term uint64) {
	s.touch()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.term = max(s.term, term)
}
