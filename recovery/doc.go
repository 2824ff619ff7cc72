// Package recovery runs recoveries on the target node: it plans them with
// package planner, moves the bytes through package transfer (from the source
// node) and package snapshot (from the repository) into the engine's
// staging, publishes the file set and the ops fetched for it with one
// commit, catches up the ops the source indexed meanwhile, and checks the
// copy against the source. It implements the RecoveryService of
// api/recoverdv1.
//
// It drives the node's storage engine through the engine contract
// (package engine, Config.Engine) and nothing else: Engine.OpenTarget for
// the copy it writes into, Target.StartStaging for the directory it writes
// the files into itself (internal/staging) and the ops it stages
// (Staging.AppendOps), Staging.Publish, Target.Apply, AdoptTerm and Flush
// for the catch-up, Reader.Info and DigestAt for the planner and the
// check. From Start until the recovery ends the engine refuses primary
// writes to the shard (Engine.RefuseWrites, naming the recovery): its
// publish would drop them. Refusals live in the engine's memory, so Open
// refuses again for the recoveries it resumes, and lifts the refusal of
// those it cannot resume; then it has the engine delete the copies
// without a commit that recoveries which never published left
// (Engine.SweepUncommitted).
//
// Stages: queued -> init -> plan -> files -> verify -> finalize -> ops ->
// done (or failed, cancelled).
//
// The planner's snapshot input comes from SnapshotInput: the repository's
// answer classified as disabled, none, unavailable (a read error is never
// "no snapshot") or available. recoverctl plan uses it too.
//
//   - files: reused files stay; the others are fetched from the source and
//     downloaded from the snapshot concurrently, while the ops above the file
//     set's checkpoint are fetched and staged next to them.
//   - verify: every needed file is staged with its length and CRC32C
//     checked.
//   - finalize: every staged file is fsynced (each on a descriptor of its
//     own, its error checked), then the engine's Staging.Publish makes
//     files and staged ops the shard in one atomic commit. Before it the target is exactly its old self (a failed
//     or cancelled recovery abandons the staging directory); a target the
//     recovery created is no shard of the node until then (Engine.OpenTarget
//     creates it without a commit) and is removed if the recovery ends
//     unpublished (Engine.RemoveUncommitted).
//     After it the target is a complete copy of the source as of the plan.
//   - ops: ops the source indexed while files moved are replayed live and
//     flushed, then the copy is checked against the source at the seqno
//     it reached (check.go). By default (streamcheck.go) what moved is
//     compared as both nodes hashed it while it streamed: each file's
//     BLAKE3 sum (compared as it was staged) and the digest of the ops, which
//     the source computes as it sends them (or, for ops that came without
//     it, from its op log at the end). With --verify-digest always,
//     content digests: the source digests its pinned commit and the ops
//     above it up to that seqno (engine.Reader.DigestAt) without stopping
//     its writes, so a source that indexed more meanwhile is compared all
//     the same. A source that no longer holds that history is compared by
//     seqnos only, and the result says why.
//
// A snapshot plan that fails (anything but a cancel or a lost lease) stops
// issuing downloads, cancels those in flight, waits for all of them, deletes
// the staging directory, records a fallback event and runs the peer plan
// the planner gave as fallback. In a hybrid plan a download that fails
// because of the repository (unavailable, a timeout, a 5xx after the
// retries, access denied) stops every download the same way, and every
// file not downloaded yet is fetched from the source in one batch: one
// failure of the repository costs one timeout, not one per round of
// downloads. A download that fails because of its file (checksum mismatch,
// blob missing) sends that file alone to the source, at once and
// concurrently with the other downloads. Such a blob is also counted
// (recoverd_snapshot_bad_blobs_total{cause}), logged and marked bad in the
// repository (snapshot.MarkBad, badblobs.go), so that later plans on every
// node leave its snapshots out (SnapshotInput passes the marks to the
// planner, which names the blob in its reasons) until a verification or a
// newer snapshot vouches for the data again. Peer files never wait for
// snapshot downloads. A full disk on the target is neither: the recovery
// fails with it. The error a failed files stage reports is the first one
// (the op stream's, the source's or the repository's), never the
// cancellation it caused elsewhere.
//
// The commit pin and the retention lease on the source live under TTLs
// (--pin-ttl, the source's --lease-ttl); both are kept alive for the whole
// attempt, whatever it is doing (peer files, snapshot downloads, ops), by
// one keeper (transfer.KeepAlive), so a recovery may last any multiple of
// them. The lease is taken before any file moves and renewed at a third of
// its TTL; a renewal that fails is retried until the lease would have
// expired. The pin is renewed the same way; before a snapshot plan falls
// back, it is renewed once more and, if the source lost it, the commit is
// pinned again: the same commit serves the fallback, a newer one makes the
// recovery re-plan. A plan that failed on the repository is not planned
// again on it by the same recovery. A lease lost, a commit pin lost (the source
// restarted) or ops found compacted make the recovery re-plan, a bounded
// number of times: it never goes on as if history it relied on were still
// there. What the earlier attempt verified is not fetched again: its
// staging directory stays for the next attempt, which keeps the staged
// files its plan still lists (complete ones as they are, partial ones from
// the prefix checked chunk by chunk) and fetches its ops afresh.
//
// A recovery that succeeded hands its lease over to the copy
// (handoff.go, transfer.HandOffLease, engine.Retention.HandOff on the
// source): its keeper stops, and the lease becomes the copy's on the
// source, retaining from the copy's local checkpoint + 1, held from then
// on by the source engine's replication (the reference engine: renewed by
// ShardService.AckReplica, expired after the source's --copy-retention).
// State.HandOff and the log say so, and from which seqno. A source whose
// engine has no replication (errors.ErrUnsupported), a failed hand-off,
// and every recovery that did not succeed release the lease as they end.
//
// Before any byte moves (and before the lease is taken) the plan is
// checked against the free space of Config.DataDir: what it stages (files
// not staged yet and ops; with a fallback, the larger plan) plus
// Config.DiskMargin must fit, or the recovery is refused with both numbers
// in its error (ErrNoSpace).
//
// The node stopping (Close) or crashing does not abandon a recovery: it
// resumes under the same id when the node starts again (journal.go), from
// what its staging holds, checked again (internal/staging Area.Keep); a
// caller cancelling it does (no fallback, staging removed).
//
// Unary calls to the source (pin, lease, metadata, digest) retry transient
// errors under the same policy as file and op streams (Config.Fetch.Retry,
// internal/retry's Peer defaults where unset: recoverd passes the one
// built from --retry-budget), each attempt bounded by the idle timeout, so
// a source that restarts or a network that drops for a moment does not
// fail a recovery outright; once the budget is spent the error wraps
// transfer.ErrRetriesExhausted. Snapshot downloads retry under
// Config.NewDownloader's policy (snapshot.Downloader.Retry).
//
// What cannot work is refused when it is asked for (Service): a source
// address that is not host:port is InvalidArgument, and StartRecovery and
// ExplainPlan open one TCP connection to the source (SourceProbeTimeout)
// and answer Unavailable with the dial error when that fails, rather than
// accepting a recovery that fails once the retry budget has passed. Only
// that first contact is probed: a source that answered and goes away later
// is retried within the budget. ListRecoveries refuses a stage that does
// not exist. StartRecovery then plans the recovery once on what both nodes
// hold (Precheck) and answers the planner's refusal at once, as
// FailedPrecondition with its reasons: a target ahead of its source is not
// overwritten unless the request allows data loss.
//
// Service answers by api/rpcerr's status table, as every server of
// recoverd does: ErrRunning is AlreadyExists, ErrNotFound NotFound,
// ErrSourceAddress InvalidArgument, ErrSourceUnreachable Unavailable
// (reasons RECOVERY_RUNNING, RECOVERY_NOT_FOUND, SOURCE_UNREACHABLE),
// ErrRefused and ErrNoSpace FailedPrecondition; a plan that fails for a
// reason the table does not know is FailedPrecondition, or Unavailable
// when the source stopped answering (retry.IsTransient, or its budget
// spent). These sentinels are defined in api/rpcerr, whose table names
// them, and kept here under their names.
//
// A recovery's repository calls (planning and downloads) run under a
// context tagged snapshot.CountRequests(KindRecovery, its counter): its
// S3 requests are counted in the node's metric and in its own state
// (State.S3Requests, the Recovery message's repository_requests).
//
// One recovery per shard runs at a time on a node; at most
// Config.MaxConcurrent run at once and the others wait, visibly, in the
// queued stage. A recovery whose source is at its limit of outgoing
// recoveries (too many pins) goes back to the queued stage and gives its
// slot back while it waits, so that recoveries from other sources run;
// it asks again, with backoff, once it holds a slot, and fails once it
// has waited Config.PinWait for the source (time queued behind this
// node's other recoveries does not count). Finished recoveries are kept for Config.KeepFinished so
// their progress can still be read, across restarts: they are journaled.
package recovery
