package shardstore

import (
	"github.com/recoverd/recoverd/seqno"
)

// noOpBatch bounds the no-ops a promotion appends to the op log at once.
const noOpBatch = 4096

// Promote makes this copy the primary of a new term: the history UUID stays,
// the primary term becomes one above the newest term the copy knows (its
// own or that of an op it holds), and every seqno below the max seqno that
// the copy never received is filled with a durable no-op of the new term,
// as Elasticsearch's fillSeqNoGaps does, so that the local checkpoint
// reaches the max seqno. Without it a hole left by the old primary would
// hold the checkpoint back for good: the op log would never be trimmed and
// every open would replay all history since the hole. The new term and
// the checkpoint are persisted with a commit.
func (s *Shard) Promote() error {
	s.touch()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.refusedLocked("promotion"); err != nil {
		return err
	}
	// Ops appended by writes still in flight are not gaps: wait until they
	// are applied or dropped. The wait releases mu (the writes need it to
	// apply their ops); no new write starts meanwhile.
	s.promoting++
	defer func() {
		s.promoting--
		s.settled.Broadcast()
	}()
	for s.inflight > 0 {
		s.settled.Wait()
	}
	if s.closed {
		return ErrClosed
	}
	term := s.knownTermLocked() + 1
	for _, gap := range s.tracker.Gaps() {
		for from := gap.From; from <= gap.To; from += noOpBatch {
			to := min(gap.To, from+noOpBatch-1)
			if err := s.fillLocked(seqno.Range{From: from, To: to}, term); err != nil {
				return err
			}
		}
	}
	s.term = term
	s.replica = false
	return s.flushLocked()
}

// fillLocked makes a no-op of term durable for every seqno of r.
func (s *Shard) fillLocked(r seqno.Range, term uint64) error {
	ops := make([]Op, 0, r.Len())
	for seq := r.From; seq <= r.To; seq++ {
		ops = append(ops, Op{SeqNo: seq, PrimaryTerm: term, Kind: OpNoOp})
	}
	ticket, err := s.oplog.append(ops)
	if err != nil {
		return err
	}
	if err := s.oplog.sync(ticket); err != nil {
		return err
	}
	for i := range ops {
		s.noteTermLocked(term, ops[i].SeqNo)
		s.tracker.MarkProcessed(ops[i].SeqNo)
	}
	return nil
}
