package shardstore

import (
	"fmt"

	"github.com/recoverd/recoverd/seqno"
)

// A recovered copy joins replication with a retention lease of its own on
// the primary (HandOff): the recovery's lease becomes the copy's, which
// replication renews as the copy acknowledges ops (AckCopy) and which
// expires once the copy has acknowledged nothing for
// Options.CopyRetention. While it lives, the ops the copy lacks stay in
// the op log, whatever RetainOps says, so a copy that restarts within the
// period recovers by ops alone.

// CopyLeaseID names the lease of the copy on node copy. Recovery leases are
// named "recovery-...", snapshot leases otherwise: the prefix keeps them
// apart.
func CopyLeaseID(copy string) string { return "copy-" + copy }

// HandOff replaces the recovery's lease (leaseID, held by holder) by the
// lease of the copy on node copy, retaining from on, in one durable step.
// The copy's lease is held by copy and lives for CopyRetention without an
// acknowledgement. A recovery lease that is gone answers
// seqno.ErrLeaseLost.
func (s *Shard) HandOff(leaseID, holder, copy string, from seqno.SeqNo) (seqno.RetentionLease, error) {
	l, err := s.leases.Replace(leaseID, holder, seqno.RetentionLease{
		ID: CopyLeaseID(copy), RetainingSeqNo: from, Source: copy, Holder: copy, TTL: s.opts.CopyRetention,
	})
	if err != nil {
		return l, fmt.Errorf("hand lease %s of %s over to copy %s: %w", leaseID, s.id, copy, err)
	}
	return l, nil
}

// AckCopy records that the copy on node copy holds every op up to
// checkpoint (its local checkpoint): its lease is renewed and retains
// from checkpoint+1 (never lower than it did). A copy that has no lease
// (never handed over, or expired) answers seqno.ErrLeaseLost.
func (s *Shard) AckCopy(copy string, checkpoint seqno.SeqNo) (seqno.RetentionLease, error) {
	id := CopyLeaseID(copy)
	retaining := checkpoint + 1
	for _, l := range s.leases.List() {
		if l.ID == id {
			retaining = max(retaining, l.RetainingSeqNo)
		}
	}
	l, err := s.leases.RenewHeld(id, copy, retaining)
	if err != nil {
		return l, fmt.Errorf("acknowledge copy %s of %s at %v: %w", copy, s.id, checkpoint, err)
	}
	return l, nil
}
