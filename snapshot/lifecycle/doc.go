// Package lifecycle is the snapshot side of a node: SnapshotService (create,
// list, delete snapshots of the node's shards, and the policy's status)
// and the snapshot policy that takes snapshots on a schedule, in the manner
// of Elasticsearch's snapshot lifecycle management.
//
// It reads shards only through the engine contract (package engine): a
// snapshot pins a commit with engine.Shard.Pin and uploads the files at the
// paths the pin gives (snapshot.Create). It lives beside package snapshot,
// not in it, because api/rpcerr and api/pbconv import snapshot.
//
// The policy (policy.go), per shard of the node:
//
//   - runs every Interval, moved by up to ±Jitter/2 of it at random so that a
//     fleet does not snapshot at the same second; a node that starts goes
//     on from the latest snapshot in the repository rather than
//     snapshotting every shard at once;
//   - snapshots primaries only (ScopePrimaries: the copies whose engine says
//     they act as primary) or every copy (ScopeAll);
//   - creates at most MaxUploads snapshots at once on the node, asked for
//     or scheduled, each byte within the node's throttle;
//   - logs and counts each run (recoverd_snapshot_policy_runs_total, and
//     recoverd_snapshot_failures_total by cause); a failed run deletes
//     nothing and is tried again at the pauses of the project's retry
//     policy (internal/retry) until its budget is spent, then at the next
//     scheduled run;
//   - after a successful snapshot only, applies retention (retention.go):
//     keep the newest Keep, none older than MaxAge, never the newest; and
//     only when every manifest of the shard could be read (a repository
//     that cannot be read is unavailable, never empty). Deleted snapshots'
//     blobs are marked and deleted after the deletion delay (snapshot.GC);
//   - holds the snapshot retention lease (lease.go) on the copy, primary or
//     replica, from the latest snapshot's local checkpoint + 1, bounded by
//     LeaseMaxOps / LeaseMaxBytes.
//
// A tick (at most once a second) asks the engine only for the shards with
// something due (a lease renewal, a run, a replica's look at the
// repository), so idle shards stay closed, and does no repository I/O
// itself: repository reads and snapshots run in per-shard jobs, a bounded
// number at once, so a hung store delays no lease renewal.
//
// Metrics: recoverd_snapshot_age_seconds per shard,
// recoverd_snapshot_duration_seconds, recoverd_snapshot_bytes_total and
// recoverd_snapshot_files_total (new vs reused), and the failures by cause.
package lifecycle
