// Package seqno holds the sequence-number vocabulary of recoverd: SeqNo and
// its sentinels, the local checkpoint tracker, seqno statistics, inclusive
// seqno ranges and retention leases.
//
// Every operation on a shard gets a SeqNo from its primary. The local
// checkpoint is the highest seqno at or below which every op is processed;
// ops may be processed out of order (a replica applies them as they come),
// so the tracker keeps the processed seqnos above the checkpoint until the
// gap below them closes. Gaps lists the seqnos below the max that are not
// processed: a promoted primary fills them with no-ops of its new term, so
// that its checkpoint reaches its max seqno rather than stay behind a hole
// the old primary left.
//
// Every op also carries the primary term under which it was assigned (a
// term is bumped at every failover). A copy's own term changes only when
// it is promoted or recovered from a primary of a newer term, never from
// the terms of the ops it receives; each commit states the highest term of
// the ops it holds above its global checkpoint, and a copy whose ops there
// are of an older term than the primary's is not continued with ops (the
// shardstore and planner packages say how).
//
// Retention leases name the seqno from which a peer still needs the op
// history; they are stored durably (one file, written atomically) because a
// lease that silently vanished after a restart would let the history a
// recovery relies on be discarded.
package seqno
