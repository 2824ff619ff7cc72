package embedded

import (
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// Count is the number of shards in a state: open (served: open now, or
// opened on its next access), unavailable or corrupt.
func (r *Registry) Count(state string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if state == "open" {
		n := 0
		for id, e := range r.shards {
			if r.servedLocked(id, e) {
				n++
			}
		}
		return n
	}
	n := 0
	for _, f := range r.failed {
		if f.State() == state {
			n++
		}
	}
	return n
}

// servedLocked reports whether e is a shard of the node that answers:
// committed, and open now, closed after it opened, or not scanned yet.
func (r *Registry) servedLocked(id shardstore.ShardID, e *entry) bool {
	if _, failed := r.failed[id]; failed {
		return false
	}
	if e.s != nil {
		return e.s.Committed()
	}
	return !e.scanned || e.stats.Generation > 0
}

// List returns the shards open now (those in use, or used within
// Limits.IdleAfter); one a recovery is creating is none yet. Listing
// lists every shard.
func (r *Registry) List() []*shardstore.Shard {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*shardstore.Shard, 0, len(r.open))
	for e := range r.open {
		if e.s.Committed() {
			out = append(out, e.s)
		}
	}
	return out
}

// Listed is one shard of Listing: its numbers, live when it is open, as
// it closed otherwise.
type Listed struct {
	Stats shardstore.Stats
	Open  bool
}

// Listing returns every committed shard of the node that is served (open
// now or opened on its next access), without opening any: a shard not
// scanned yet is described by its newest commit point, read without
// opening it. NotOpen lists the others.
func (r *Registry) Listing() []Listed {
	r.mu.Lock()
	open := make([]*shardstore.Shard, 0, len(r.open))
	var unscanned []shardstore.ShardID
	out := make([]Listed, 0, len(r.shards))
	for id, e := range r.shards {
		switch {
		case !r.servedLocked(id, e):
		case e.s != nil:
			open = append(open, e.s)
		case !e.scanned && !e.listed:
			unscanned = append(unscanned, id)
		default:
			out = append(out, Listed{Stats: e.stats})
		}
	}
	r.mu.Unlock()
	for _, s := range open {
		out = append(out, Listed{Stats: s.Stats(), Open: true})
	}
	for _, id := range unscanned {
		m, err := shardstore.ReadMetadata(r.dataDir, id)
		if err != nil {
			continue // the scan, or the first access, says why
		}
		st := commitStats(id, m)
		out = append(out, Listed{Stats: st})
		r.mu.Lock()
		if e := r.shards[id]; e != nil && !e.scanned && !e.listed {
			e.stats, e.listed = st, true
		}
		r.mu.Unlock()
	}
	return out
}

// commitStats are the numbers of a shard as its commit m records them.
func commitStats(id shardstore.ShardID, m shardstore.Metadata) shardstore.Stats {
	c := m.Commit
	return shardstore.Stats{ID: id, HistoryUUID: c.HistoryUUID, PrimaryTerm: c.PrimaryTerm,
		Seq:              seqno.Stats{MaxSeqNo: c.MaxSeqNo, LocalCheckpoint: c.LocalCheckpoint, GlobalCheckpoint: c.GlobalCheckpoint},
		MinRetainedSeqNo: c.MinRetainedSeqNo, Generation: m.Generation, Segments: len(m.Files), SegmentBytes: m.TotalBytes()}
}
