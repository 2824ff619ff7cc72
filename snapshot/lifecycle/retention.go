package lifecycle

import (
	"context"
	"fmt"
	"time"

	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// retain applies retention to a shard's snapshots, after a snapshot of it
// succeeded: keep the newest Keep and none older than MaxAge, never the
// newest. It deletes nothing unless every manifest of the shard could be
// read: a repository that cannot be read is unavailable, never empty, and
// a manifest that does not decode may be one a recovery needs. Deleted
// snapshots' blobs are marked and deleted after the deletion delay
// (snapshot.GC).
func (p *Policy) retain(ctx context.Context, id shardstore.ShardID) {
	if p.cfg.Keep == 0 && p.cfg.MaxAge == 0 {
		return
	}
	entries, err := snapshot.List(ctx, p.svc.cfg.Repo, id)
	if err != nil {
		p.svc.cfg.Metrics.retentionFailed(err)
		p.log.Warn("snapshot policy: retention skipped, nothing deleted: the repository cannot be listed", "shard", id, "error", err)
		return
	}
	keep, err := retainCount(entries, p.cfg.Keep, p.cfg.MaxAge, time.Now())
	if err != nil {
		p.svc.cfg.Metrics.retentionFailed(err)
		p.log.Warn("snapshot policy: retention skipped, nothing deleted", "shard", id, "error", err)
		return
	}
	if keep == len(entries) {
		return
	}
	res, err := snapshot.GC(ctx, p.svc.cfg.Repo, id, keep, snapshot.DeleteOptions{Delay: p.svc.cfg.DeletionDelay})
	if res != nil {
		p.svc.cfg.Metrics.retentionDeleted(len(res.Deleted))
	}
	if err != nil {
		p.svc.cfg.Metrics.retentionFailed(err)
		p.log.Warn("snapshot policy: retention failed", "shard", id, "error", err)
		return
	}
	p.log.Info("snapshot policy: retention", "shard", id, "kept", len(res.Kept), "deleted", res.Deleted, "marked_blobs", res.MarkedBlobs, "deleted_blobs", res.DeletedBlobs)
}

// retainCount is how many of a shard's snapshots (oldest first) retention
// keeps: the newest keep (0: all), and of those only the ones started
// within maxAge (0: any age), always at least the newest. It fails when a
// manifest cannot be read (snapshot.PlanGC's rule).
func retainCount(entries []snapshot.Entry, keep int, maxAge time.Duration, now time.Time) (int, error) {
	if _, err := snapshot.PlanGC(entries, 0); err != nil {
		return 0, fmt.Errorf("lifecycle: retention: %w", err)
	}
	n := len(entries)
	if keep > 0 {
		n = min(n, keep)
	}
	if maxAge > 0 {
		young := 0
		for _, e := range entries {
			if now.Sub(e.Manifest.StartTime) <= maxAge {
				young++
			}
		}
		n = min(n, max(young, 1))
	}
	return n, nil
}
