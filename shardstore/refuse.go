package shardstore

import (
	"fmt"
	"slices"
	"strings"

	"github.com/recoverd/recoverd/engine"
)

// ErrWritesRefused is returned by primary writes, merges and promotions
// while a recovery onto this node replaces the copy (RefuseWrites).
var ErrWritesRefused = engine.ErrWritesRefused

// RefuseWrites makes the copy refuse primary writes (IndexBatch, Index,
// Delete), merges and promotions with ErrWritesRefused, naming
// recoveryID, until ResumeWrites is called with the same id: a recovery
// onto this node is replacing the copy, and its publish would drop what
// they wrote. Apply (a primary's ops replicated to this copy) and Flush go
// on: a publish replaces ops applied before it, and the recovery fetches
// the same ops from its source after it. Several recoveries may refuse at
// once; writes resume when none is left. A refusal lives in memory only.
func (s *Shard) RefuseWrites(recoveryID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused == nil {
		s.refused = map[string]bool{}
	}
	s.refused[recoveryID] = true
}

// ResumeWrites lifts the refusal recoveryID holds; one it does not hold
// changes nothing.
func (s *Shard) ResumeWrites(recoveryID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.refused, recoveryID)
}

// refusedLocked is the error a primary write, merge or promotion answers
// while a recovery refuses writes; nil when none does.
func (s *Shard) refusedLocked(what string) error {
	if len(s.refused) == 0 {
		return nil
	}
	ids := make([]string, 0, len(s.refused))
	for id := range s.refused {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return fmt.Errorf("%w: %s of shard %s refused: it is being recovered by %s; write to it once the recovery is done (or cancel it)",
		ErrWritesRefused, what, s.id, strings.Join(ids, ", "))
}
