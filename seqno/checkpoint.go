package seqno

import (
	"slices"
	"sync"
)

// CheckpointTracker tracks the local checkpoint of a shard copy. It is safe
// for concurrent use.
type CheckpointTracker struct {
	mu         sync.Mutex
	checkpoint SeqNo
	maxSeqNo   SeqNo
	next       SeqNo
	// pending holds processed seqnos above checkpoint+1, waiting for the gap
	// below them to close.
	pending map[SeqNo]struct{}
}

// NewCheckpointTracker starts a tracker at the given max seqno and local
// checkpoint (both NoOpsPerformed for an empty shard). Seqnos between the
// checkpoint and maxSeqNo are not known to be processed.
func NewCheckpointTracker(maxSeqNo, checkpoint SeqNo) *CheckpointTracker {
	if maxSeqNo < checkpoint {
		maxSeqNo = checkpoint
	}
	return &CheckpointTracker{
		checkpoint: checkpoint,
		maxSeqNo:   maxSeqNo,
		next:       maxSeqNo + 1,
		pending:    make(map[SeqNo]struct{}),
	}
}

// Generate assigns the next seqno, as a primary does.
func (t *CheckpointTracker) Generate() SeqNo {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.next
	t.next++
	if s > t.maxSeqNo {
		t.maxSeqNo = s
	}
	return s
}

// AdvanceMaxSeqNo records that an op with seqno s exists (a replica sees ops
// generated elsewhere).
func (t *CheckpointTracker) AdvanceMaxSeqNo(s SeqNo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advanceLocked(s)
}

func (t *CheckpointTracker) advanceLocked(s SeqNo) {
	if s > t.maxSeqNo {
		t.maxSeqNo = s
	}
	if s >= t.next {
		t.next = s + 1
	}
}

// MarkProcessed records that the op with seqno s is processed (and durable);
// the checkpoint advances over every contiguous processed seqno.
func (t *CheckpointTracker) MarkProcessed(s SeqNo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advanceLocked(s)
	if s <= t.checkpoint {
		return
	}
	if s != t.checkpoint+1 {
		t.pending[s] = struct{}{}
		return
	}
	t.checkpoint = s
	for {
		if _, ok := t.pending[t.checkpoint+1]; !ok {
			return
		}
		delete(t.pending, t.checkpoint+1)
		t.checkpoint++
	}
}

// Checkpoint is the highest seqno at or below which every op is processed.
func (t *CheckpointTracker) Checkpoint() SeqNo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.checkpoint
}

// MaxSeqNo is the highest seqno seen.
func (t *CheckpointTracker) MaxSeqNo() SeqNo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.maxSeqNo
}

// IsProcessed reports whether the op with seqno s is processed.
func (t *CheckpointTracker) IsProcessed(s SeqNo) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s <= t.checkpoint {
		return true
	}
	_, ok := t.pending[s]
	return ok
}

// Gaps returns the seqnos at or below the max seqno that are not processed,
// as ranges in ascending order: what holds the checkpoint back. A promoted
// primary fills them with no-ops.
func (t *CheckpointTracker) Gaps() []Range {
	t.mu.Lock()
	defer t.mu.Unlock()
	done := make([]SeqNo, 0, len(t.pending))
	for s := range t.pending {
		done = append(done, s)
	}
	slices.Sort(done)
	var out []Range
	from := t.checkpoint + 1
	for _, s := range done {
		if s > from {
			out = append(out, Range{From: from, To: s - 1})
		}
		from = s + 1
	}
	if from <= t.maxSeqNo {
		out = append(out, Range{From: from, To: t.maxSeqNo})
	}
	return out
}
