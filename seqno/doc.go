// Package seqno holds the sequence-number vocabulary of recoverd: SeqNo and
// its sentinels, the local checkpoint tracker, seqno statistics, inclusive
// seqno ranges and retention leases.
//
// Every operation on a shard gets a SeqNo from its primary. The local
// checkpoint is the highest seqno at or below which every op is processed;
// ops may be processed out of order (a replica applies them as they come),
// so the tracker keeps the processed seqnos above the checkpoint until the
// gap below them closes.
//
// Retention leases name the seqno from which a peer still needs the op
// history; they are stored durably (one file, written atomically) because a
// lease that silently vanished after a restart would let the history a
// recovery relies on be discarded.
package seqno
