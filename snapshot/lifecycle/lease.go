package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// The snapshot retention lease. Every copy the policy watches (primary or
// replica: a replica is the next primary after a failover) holds a lease
// on itself, id seqno.SnapshotLeaseID, from the latest snapshot's local
// checkpoint + 1: the snapshot plus the ops above it can then build a new
// copy without reading files off the copy. The lease is bounded: it never
// retains more than LeaseMaxOps ops, nor more than LeaseMaxBytes by the
// copy's mean op size; when the bound is hit it stops at the bound, and a
// planner then finds the snapshot's ops gone and says why (it names the
// lease). It advances when a new snapshot lands, is renewed at a third of
// the copy's lease TTL, and is released when the copy's history is no
// longer the snapshot's.

// leaseTarget is where the lease of a copy should retain from, and why it
// stops above the snapshot's checkpoint + 1 (empty: it does not).
func leaseTarget(snapCheckpoint seqno.SeqNo, info engine.ShardInfo, maxOps, maxBytes int64) (seqno.SeqNo, string) {
	from := snapCheckpoint + 1
	why := ""
	top := info.Seq.MaxSeqNo + 1
	if maxOps > 0 && top-seqno.SeqNo(maxOps) > from {
		from = top - seqno.SeqNo(maxOps)
		why = fmt.Sprintf("bound of %d ops hit", maxOps)
	}
	if maxBytes > 0 && info.AvgOpBytes > 0 {
		n := max(maxBytes/info.AvgOpBytes, 1)
		if top-seqno.SeqNo(n) > from {
			from = top - seqno.SeqNo(n)
			why = fmt.Sprintf("bound of %d bytes (%d ops of %d bytes) hit", maxBytes, n, info.AvgOpBytes)
		}
	}
	if !info.Retained.Empty() && info.Retained.From > from {
		from = info.Retained.From
		if why == "" {
			why = fmt.Sprintf("ops below %v were gone before the lease was taken", from)
		}
	}
	return from, why
}

// leases says whether the policy holds snapshot retention leases.
func (p *Policy) leases() bool { return p.cfg.LeaseMaxOps != 0 || p.cfg.LeaseMaxBytes != 0 }

// leaseDueLocked says whether a copy's lease needs the engine: the latest
// snapshot changed, or a third of the lease TTL passed since the renewal.
func (p *Policy) leaseDueLocked(st *shardState) bool {
	return p.leases() && st.latest != nil && (st.leaseFor != st.latest.ID || time.Since(st.leaseRenewed) >= st.leaseTTL/3)
}

// keepLease takes, advances or renews the snapshot retention lease of a
// copy when due: the latest snapshot changed, or a third of the lease TTL
// passed (force: now).
func (p *Policy) keepLease(ctx context.Context, id shardstore.ShardID, sh engine.Shard, force bool) {
	p.mu.Lock()
	st := p.shards[id]
	latest := st.latest
	due := force || p.leaseDueLocked(st)
	p.mu.Unlock()
	if latest == nil || !due || !p.leases() {
		return
	}
	info, err := sh.Info(ctx)
	if err != nil || !info.Committed {
		return
	}
	var held *seqno.RetentionLease
	for _, l := range info.Leases {
		if l.ID == seqno.SnapshotLeaseID {
			held = &l
		}
	}
	if info.Meta.Commit.HistoryUUID != latest.Commit.HistoryUUID {
		// The snapshot is of another history: it cannot be continued by
		// this copy's ops.
		if held != nil {
			if err := sh.ReleaseLease(ctx, seqno.SnapshotLeaseID, p.cfg.NodeID); err != nil {
				p.log.Warn("snapshot policy: cannot release the snapshot retention lease", "shard", id, "error", err)
			}
		}
		p.mu.Lock()
		st.lease, st.leaseFor, st.leaseBound, st.leaseRenewed, st.leaseTTL = nil, latest.ID, "", time.Now(), info.LeaseTTL
		p.mu.Unlock()
		return
	}
	from, why := leaseTarget(latest.Commit.LocalCheckpoint, info, p.cfg.LeaseMaxOps, p.cfg.LeaseMaxBytes)
	var l seqno.RetentionLease
	if held != nil {
		l, err = sh.RenewLease(ctx, seqno.SnapshotLeaseID, p.cfg.NodeID, max(from, held.RetainingSeqNo))
	}
	if held == nil || errors.Is(err, engine.ErrLeaseLost) {
		l, err = sh.AcquireLease(ctx, engine.LeaseRequest{ID: seqno.SnapshotLeaseID, RetainingSeqNo: from, Holder: p.cfg.NodeID,
			Source: "snapshot policy of " + p.cfg.NodeID + ": ops above the latest snapshot"})
	}
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("snapshot policy: cannot keep the snapshot retention lease", "shard", id, "retaining", from, "error", err)
		}
		return
	}
	p.mu.Lock()
	if st.leaseBound != why && why != "" {
		p.log.Warn("snapshot policy: the snapshot retention lease stopped at its bound: the latest snapshot plus ops can no longer build a copy without files off this one",
			"shard", id, "snapshot", latest.ID, "snapshot_checkpoint", latest.Commit.LocalCheckpoint, "retaining", l.RetainingSeqNo, "why", why)
	}
	st.lease, st.leaseFor, st.leaseBound, st.leaseRenewed, st.leaseTTL = &l, latest.ID, why, time.Now(), info.LeaseTTL
	p.mu.Unlock()
}
