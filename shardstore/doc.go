// Package shardstore is one shard copy on disk and the reference storage
// engine that writes it: segments, commit points, the op log, retention
// leases, the staging of incoming files and ops, and the metadata diff the
// planner works from. The on-disk formats are described beside their code
// (commit.go, segment.go, oplog.go).
//
// # Sequence numbers and primary terms
//
// A copy runs as a primary (IndexBatch, Delete: each op gets the next
// seqno under the copy's term) or as a replica (Apply: ops keep the seqno
// and term their primary gave them, in any order; a seqno already
// processed is skipped). Every op carries its term in the op log, in
// segments and on the wire. The local checkpoint is the highest seqno at
// or below which every op is processed and durable.
//
// The copy's own term (CommitData.PrimaryTerm) changes only by Promote or
// by a recovery: Publish takes the term of the commit it publishes, and
// AdoptTerm, which the recovery calls after an ops-only catch-up, takes
// the source's. It is never raised from the terms of the ops the copy
// receives, so it says nothing of the ops the copy holds. What does is
// CommitData.MaxTermAboveGlobalCheckpoint: the highest term of the ops the
// commit holds above its global checkpoint (0 when it holds none). It is
// computed from the highest seqno held per term, which the commit point
// persists (a commit published by a recovery seeds it from the source's
// value, placed just above the global checkpoint so that it never
// overstates the terms above a later one). The planner trusts only this
// field to decide whether a copy's ops above its global checkpoint may
// differ from a newer primary's.
//
// # Ops of a newer term over an old primary's ops
//
// After a failover a replica may hold ops above its global checkpoint that
// the old primary sent to it alone; the new primary may never have had
// them, or may give their seqnos to other ops. Elasticsearch resets such a
// replica to its global checkpoint when it first sees the new term. The
// reference engine keeps one version of each document and cannot undo an
// op in place, so it does not replace the old ops: Apply refuses, whole
// and without changing anything, a batch whose newest term (standing for
// the term of the primary that sent it) is newer than every term the copy
// knows (its own, and those of the ops it holds or held) while the copy
// holds ops above its global checkpoint. The error wraps ErrStaleTerm
// (FailedPrecondition on the wire). The copy keeps its old ops and says so
// in its commit; the planner then neither continues it with ops-only nor
// restores a snapshot of it, and a file-based recovery from the new
// primary replaces it, which is the rollback. A copy with nothing above
// its global checkpoint takes the new term's ops at once. Ops at or below
// the global checkpoint are final. Within one term a primary never gives a
// seqno two ops, so an op of a term the copy already knows for a seqno it
// holds is skipped; fencing off a deposed primary that keeps sending is
// the replication layer's job (Elasticsearch checks the request's term).
//
// # Promotion fills the gaps
//
// Promote makes the copy the primary of a term one above every term it
// knows, keeping the history UUID. It waits for the writes in flight to
// apply or drop their ops (releasing the shard's lock, which they need;
// no write starts meanwhile), then fills every seqno below the max seqno that the copy never received
// with a no-op of the new term (Elasticsearch's fillSeqNoGaps), fsynced
// before the commit that records the new term, so the local checkpoint
// reaches the max seqno: otherwise one hole left by the old primary would
// hold the checkpoint back for good, the op log would never be trimmed and
// every open would replay all history since the hole. A no-op (OpNoOp) has
// no key and no value and changes no document; the op log stores and
// replays it, ReadOps and the peer op stream carry it to replicas and
// recoveries, and no segment ever holds one.
//
// # Retention and open
//
// A flush keeps in the op log every op above the local checkpoint, the
// RetainOps ops below it, and every op a live retention lease asks for;
// older generations are deleted. Open replays the op log above the
// commit's local checkpoint into the memtable (the count is logged), so
// after a promotion and a flush it replays only the ops written since.
//
// # Durability of writes
//
// A write (IndexBatch, Delete, Apply) appends its ops to the op log under
// the shard's lock, then waits without the lock for an fsync that covers
// them (group commit: one fsync serves every write appended before it
// started). Only once that fsync returned are the ops applied to the
// memtable and marked processed: before it they are neither visible to
// Get nor part of a commit. A failed write or fsync of the op log cuts
// its file back to the prefix known durable (a later fsync that succeeds
// proves nothing about pages written before the failure: the kernel
// reports a writeback error once and may drop the pages) and fails every
// write appended since, so those ops are never visible or committed, not
// even after a reopen; later writes go on. If even the cut fails, the op
// log refuses writes until the shard is reopened. A primary keeps the
// seqnos of dropped ops as holes below its max seqno, which a promotion
// fills.
//
// # Durability of a recovery's files
//
// Publish fsyncs every staged file on a descriptor of its own, at most 16
// at once, and fails on the first error before anything moves, leaving
// the old shard: a syncfs would not report a writeback error another
// descriptor has seen (nor any, before Linux 5.8). The staged op log is
// fsynced when it is closed. The files are then renamed into place, the
// shard directory fsynced, and one commit point written atomically. Every
// directory created for a shard, its op log, a staging or an op log epoch
// has its parent fsynced (fsutil.MkdirAllSync).
//
// # Op log repair
//
// The op log is repaired only at its tail (etcd wal's rule). Opening cuts
// the newest generation at its first bad record only when everything from
// there to the end of the file is what a crash in the middle of an append
// leaves: records running past the end of the file, records with a zeroed
// 512-byte sector, zeros. A bad record that a valid one follows, a
// complete record failing its checksum with every sector written, or an
// impossible length stops the open with ErrCorrupt, naming the file and
// the offset; a read error stops it with that error (not ErrCorrupt). In
// both cases nothing is changed. Any damage in an older generation (which
// was fsynced before the next one began) is ErrCorrupt.
//
// # Unreadable is not corrupt
//
// ErrCorrupt means proven damage: a checksum or format failure of a
// commit point, a segment or an op log record. A file that cannot be read
// (EIO, EMFILE, EACCES, EISDIR: any *fs.PathError or errno) is not: the
// error is returned as it is, and Open wraps it, and every other failure
// that is not ErrCorrupt, ErrNotFound or ErrInvalidName (a lock held by
// another process, a format newer than this build), as ErrUnavailable.
// Only ErrCorrupt may justify moving a shard aside; a shard that is
// unavailable stays where it is and opens once the cause is gone. Opening
// passes over a damaged commit point to an older one, never over one it
// could not read (that would roll the shard back). List lists a shard
// whose directory cannot be read, so that it is reported rather than
// unseen.
//
// # Digests
//
// DigestAt hashes every live document (key, seqno, value), in key order,
// of the content the ops at or below a seqno make: two copies holding the
// same ops up to that seqno have the same digest whatever their files and
// whatever either holds above it, so a recovery compares its copy with a
// source that goes on indexing. It reads a pinned commit whose max seqno
// is at or below that seqno plus the ops above its checkpoint from the op
// log, holding the shard's lock only to pin them; writes, flushes and
// merges go on during the scan, and its context cancels it. A copy that
// no longer holds its content at that seqno answers seqno.ErrCompacted.
package shardstore
