// Package cleanup removes what failed, cancelled or interrupted work left
// on a node and in its snapshot repository, at start and periodically:
//
//   - per open shard of the node's engine (engine.Shard.Sweep; the
//     reference engine does it under the shard lock): staging directories
//     of recoveries that are not running, temp files of interrupted
//     durable writes, files that neither the current commit nor a pinned
//     commit references (the reference engine: segment files, commit
//     points, op log epochs the current commit does not use), and
//     retention leases past their TTL;
//   - copies without a commit that recoveries created and never
//     published, and that no running recovery writes into
//     (Engine.SweepUncommitted; recovery.Manager.Open does it once at
//     start, for the recoveries it resumes);
//   - in the repository (when there is one), for every shard this node
//     holds a committed copy of (snapshot.RemoveUnfinished, which lists
//     and reads that shard's prefixes only): blobs of unfinished uploads
//     (no manifest references them) older than the upload grace period
//     are marked for deletion, and blobs whose deletion marks (from this
//     sweep, or from a snapshot gc or delete in any process) are older
//     than the deletion delay and that no manifest references are
//     deleted; for a local repository, temp files of interrupted Puts
//     older than the grace period. The marks and the delay are what keep a snapshot being
//     created in another process from naming a blob this sweep deletes
//     (see package snapshot, deletion.go).
//
// Decisions:
//
//   - A node sweeps only the repository prefixes of the shards it holds,
//     never the whole repository: the repository is shared by the fleet,
//     and every node listing every shard of it at every sweep costs
//     millions of requests per node at a fleet's scale (SCALE.md). Every
//     shard with a copy somewhere is swept by its holders; the two copies
//     of a shard both sweep it, which is harmless: marking skips blobs
//     already marked, a blob is deleted only once its mark is older than
//     the deletion delay and no manifest names it, whoever marked it, and
//     deleting a deleted key is not an error. A shard no node holds any
//     more (a deleted index) is left alone: an operator removes what it
//     left with `recoverctl snapshot unfinished --remove` or `snapshot
//     gc`, per shard.
//   - A staging directory is kept when the engine has it in use (the only
//     way a recovery writes into one) or when the running-recoveries
//     callback names its recovery id; both are checked, the first by the
//     engine (the reference engine: under the shard lock), so a sweep
//     racing a recovery that is starting or staging never removes its
//     files. A copy without a commit is kept likewise: in use as a
//     recovery's target, or its shard named by the callback.
//   - Nothing is removed because something could not be read: a shard of
//     the repository with a manifest that cannot be read is skipped and
//     logged, and the run goes on with the next one; a repository found
//     unavailable (a listing or read failing after its retries) ends the
//     repository part of the sweep, the next shards would only wait for
//     the same retries. A shard with a snapshot upload in progress in this
//     process (Config.Uploading) is skipped too, whatever the grace.
//   - The upload grace must exceed the longest snapshot upload of any node
//     sharing the repository: a blob younger than it may belong to an
//     upload in progress. Zero or negative is refused.
//   - Every mark and removal is logged (slog, Info) with its kind, shard
//     and name; removals are counted in recoverd_cleanup_removals_total{kind}
//     (uncommitted: a copy a recovery created and never published; upload:
//     an unfinished upload; snapshot_blob: a blob of a deleted snapshot);
//     failures are counted in recoverd_cleanup_failures_total{step} (shard:
//     a shard's sweep, its leases included; uncommitted; repository).
//   - Snapshot retention (keeping the newest N snapshots) is snapshot.GC,
//     run by an operator with `recoverctl snapshot gc --keep N`: deleting
//     snapshots is a policy decision, not a leftover, so the periodic sweep
//     does not do it.
package cleanup
