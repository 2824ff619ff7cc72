// Package planner decides how a shard copy is recovered: which files the
// target reuses, which it downloads from the snapshot repository, which it
// copies from the source node, and which ops the source then replays.
//
// Compute(Input) Plan is a pure function: no I/O, no clock, no randomness.
// The caller gathers the source's and target's metadata, what the source's
// op log still retains, the latest snapshot the repository lists, the node
// versions and the settings; the planner returns a Plan with the reasons,
// one sentence each, for every decision taken and every option rejected.
// `recoverctl plan --explain` prints them (Plan.Explain).
//
// # The policy
//
// Versions come first. A node cannot read files or ops written by a newer
// version, so when the target runs an older version than the source (by
// semantic-version order), or reads an older format than the source's
// commit or the source writes, the recovery is refused: upgrade the target
// first. The same rule rejects a snapshot written by a version newer than
// the target's, or in a format newer than the target reads; then the
// snapshot is simply not used.
//
// Ops-only. When the target has a commit of the same history (history UUID)
// as the source, is not ahead of the source, and the source still retains
// every op above the target's local checkpoint, the source replays those ops
// and no file moves. This is taken whenever it is possible, as
// Elasticsearch does: the op range is bounded by the source's retention.
//
// After a failover, a copy whose ops above its global checkpoint are of an
// older primary term than the source's is not continued (neither a target
// by ops-only nor a snapshot's commit): the new primary may never have had
// those ops, or may have given their seqnos to other ops, and replaying
// from the copy's checkpoint would leave the two silently different. The
// planner reads the terms of those ops from the commit's
// MaxTermAboveGlobalCheckpoint, never from the commit's PrimaryTerm (the
// copy's own term, which says nothing of the ops it holds), and compares it
// with the source's term: the higher of the source commit's PrimaryTerm and
// MaxTermAboveGlobalCheckpoint. A commit with nothing above its global
// checkpoint is continued whatever its terms. Elasticsearch rolls such a
// copy back to its global checkpoint; recoverd copies files instead.
// Validate rejects a plan that continues such a commit.
//
// A target ahead of its source is never overwritten silently. When the
// target's commit is of the source's history and holds ops past the
// source's max seqno, no op replay can keep them and every file-based plan
// would drop them, though they may have been acknowledged: the recovery is
// refused, and the reason names both max seqnos, unless the request allows
// data loss (Settings.AllowDataLoss; then the reasons say which ops are
// discarded). The exception is the failover case above: ops of an older
// primary term above the target's global checkpoint, when that checkpoint
// is within the source's ops, were never acknowledged by every in-sync
// copy and are discarded as Elasticsearch rolls them back.
//
// Otherwise the recovery is file-based: a file set is published on the
// target with its commit, then the source replays the ops from the file
// set's local checkpoint + 1 to its max seqno. Ops never cross histories:
// the file set is always of the source's history. Whatever the file set,
// a file already identical on the target (same name, length, CRC32C and,
// where both carry one, writer UUID) is reused, never copied again. The
// candidate file-based plans are:
//
//   - peer: the source's commit, every file from the source. It is always a
//     candidate, and it is the fallback of every snapshot and hybrid plan. If
//     the source does not even retain the ops above its own commit, nothing
//     can bring the copy up to date and the recovery is refused.
//   - hybrid: the source's commit; files that are the same in the snapshot
//     come from the repository, the rest from the source. Only sameness of
//     the files matters, so the snapshot may be of another history.
//   - snapshot: the snapshot's commit, every file from the repository, then
//     the ops above the snapshot's checkpoint from the source. The snapshot
//     must be of the source's history and not ahead of the source commit,
//     and the source must retain those ops. This covers the failover case:
//     after a primary failover the new primary's files differ physically
//     from the snapshot taken on the old one, so a hybrid plan would find
//     nothing to take from the repository, yet the snapshot is logically
//     equivalent (same history, same max seqno, max seqno == local
//     checkpoint in both, and its ops above its global checkpoint, if any,
//     not of an older term than the source's). Beyond Elasticsearch, a snapshot that is older
//     than the source commit is used too, with more ops from the source,
//     but only when that reads fewer bytes off the source than the peer plan.
//
// Snapshots are not considered when the settings turn them off, when the
// repository is disabled or unavailable (its error is quoted), when it holds
// no snapshot of the shard, or when the snapshot is rejected (versions, an
// invalid manifest, or blobs marked bad: Snapshot.BadBlobs, filled by the
// caller from the repository's bad-blob marks; the reason names the first
// bad blob and what found it). The recovery then goes to the peer.
//
// Among the candidates the cheapest wins: cost = SourceByteCost × bytes read
// off the source (files, plus ops estimated at Source.OpBytes each) +
// RepoByteCost × bytes read from the repository + OpCost × ops replayed. By
// default a byte from the repository costs a quarter of one from the source,
// because the source is a busy primary. Ties go to fewer bytes off the
// source, then to the simpler plan (peer, hybrid, snapshot): a snapshot
// whose files are physically those of the source is used as a hybrid plan.
//
// Every plan names the retention lease the source must hold: from the first
// op to replay. It is needed even when no op is left to replay, because the
// source keeps indexing while the files move. When one of the source's live
// leases already retains those ops, the plan names it.
//
// # Input that makes no sense
//
// A source whose metadata is inconsistent (a file listed twice, a name that
// is not allowed, a checkpoint above the max seqno, a max seqno below its
// commit's) is refused. A target whose metadata is unreadable or invalid is
// treated as empty, and the reasons say so: nothing is reused from it. A
// snapshot whose manifest is invalid is rejected. Plan.Validate checks a
// plan against its input and is what the fuzz test and the executor use.
//
// The scenario files in testdata/ show the policy case by case, in a
// readable text format: inputs, expected plan kind, file split, op range
// and key reasons.
package planner
