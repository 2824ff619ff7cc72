// Package shardstore is one shard copy on disk and the reference storage
// engine that writes it: segments, commit points, the op log, retention
// leases, the staging of incoming files and ops, and the metadata diff the
// planner works from. This comment is the on-disk format; the code that
// reads and writes each part is named beside it. The vocabulary it shares
// with recoverd (ShardID, FileMeta, CommitData, Metadata, Op, OpKind,
// ValidateName and the error sentinels) is package engine's, the contract
// between recoverd and a storage engine, under shardstore's names
// (aliases); engine/embedded makes this engine implement that contract.
//
// # Directory layout
//
// A shard lives in <data>/shards/<index>/<shard>/ (Dir), <index> a valid
// name (ValidateName), <shard> its number in decimal:
//
//	LOCK                        flock'ed by the process that has it open
//	commit_<gen>                commit points, <gen> in 16 decimal digits
//	seg_<n>_<12 hex digits>     segments: immutable, each name used once
//	leases                      retention leases (package seqno)
//	oplog/<epoch>/<gen>.log     the op log: <epoch> in 8 decimal digits,
//	                            <gen> in 16
//	staging/<recovery-id>/      what one recovery stages (never read as data):
//	    <file name>             staged files, under their final names,
//	                            written by the recovery (recoverd), which
//	                            keeps its own records there too
//	    ops.staged/<gen>.log    staged ops, an op log of its own
//	.tmp-<name>-<random>        a durable write cut short (fsutil.TempPrefix)
//
// What a commit point names (segments, the op log epoch) is fsynced, and
// every directory created has its parent fsynced (fsutil.MkdirAllSync),
// before the commit point is written, so it survives a power loss. Commit
// points and the leases file are written by fsutil.WriteFileAtomic: a temp
// file, fsync, rename, fsync of the directory; a crash leaves the old file
// or the new one, and a temp file that Open removes (Sweep too, once it is
// SweepTempAge old). List and Exists see a shard only once its directory
// holds a commit point; Open without Options.Create refuses one that has
// none (ErrNotFound). In the shard directory, Open and Sweep delete only
// the names they recognise. This package never moves a shard aside:
// recoverd moves one proven corrupt to <data>/quarantine/ when a recovery
// replaces it, and leaves an unreadable one where it is.
//
// # Commit points
//
// A commit point is the only thing that makes files and seqnos the shard's
// content (commit.go). The file commit_<gen> is
//
//	u32 magic "RCMT", u32 payload length (at most 256 MiB), JSON payload,
//	u32 CRC32C (Castagnoli) of every byte before it
//
// all little-endian: JSON keeps it readable and extensible, the checksum
// makes a damaged one detectable. The payload (commitPoint) holds:
//
//   - generation: equal to <gen> in the name, or the file is damaged.
//   - files: every file of the commit (FileMeta, sorted by name): name,
//     length, crc32c (the file's trailing checksum) and writer_uuid. The
//     names are validated, none twice, no negative length.
//   - data (CommitData, the user data the planner reads):
//     history_uuid names the history of ops the copy belongs to (a new
//     one for a new shard; Promote keeps it; a recovery takes the
//     source's); max_seqno is the highest seqno the copy holds;
//     local_checkpoint the highest seqno at or below which every op is
//     processed and its effect in the commit's segments (never above
//     max_seqno);
//     global_checkpoint the primary's, as far as the copy holds it
//     (min(SetGlobalCheckpoint, local_checkpoint)); min_retained_seqno the
//     lowest seqno the op log still holds (the retention floor, below);
//     primary_term the copy's own term; writer_version the engine that
//     wrote it (WriterVersion); format_version (FormatVersion);
//     max_term_above_global_checkpoint the highest term of the ops held
//     above the global checkpoint, omitted when 0 (see below). Seqnos are
//     int64; -1 (seqno.NoOpsPerformed) means none.
//   - oplog_epoch: the op log directory oplog/<epoch>/ of this commit.
//   - terms: per primary term of an op the copy holds or held, the highest
//     seqno of such an op (a JSON object keyed by the term in decimal);
//     omitted by a commit a recovery published, whose source told only the
//     highest term.
//
// A shard created by Open (Options.Create) starts at generation 1, epoch
// 1, term 1, a new history UUID, its max seqno and checkpoints at -1 and
// min_retained_seqno 0. Generation 0 is
// never written: it is the in-memory commit of a shard opened Uncommitted.
// Flush, Merge, Promote and Publish each write the next generation; a new
// generation is above every commit_ file present, valid or not, so it
// never reuses the name of a damaged one. Open loads the newest commit
// point that verifies, passing over a damaged one (ErrCorrupt) to an older
// one, never over one it could not read or of a newer format (that would
// roll the shard back: it fails, unavailable). Once a commit is written
// the older commit points are deleted; a damaged newer one stays until a
// commit above it is written.
//
// # Segments
//
// A segment (segment.go) is an immutable file of document versions, sorted
// by key. Its name seg_<n>_<hex> is new for every file (n grows within a
// process, the hex part is random, a name in use is skipped and the file is
// created O_EXCL), so a name is not reused for other content. Its layout,
// all integers little-endian or varints:
//
//	records  strictly ascending keys, each an op record (below): the
//	         document's newest version, a value or a tombstone (OpDelete)
//	index    every 64th record: uvarint keyLen, key, uvarint offset
//	footer   u64 records, u64 index offset, u64 index entries,
//	         [16]byte writer UUID, u32 magic "SEG1",
//	         u32 CRC32C of every byte before it
//
// The footer is 48 bytes. Its last four bytes are the file's checksum
// (FileMeta.CRC32C), so a segment can be verified alone; the writer UUID is
// random per file, in hex in FileMeta.WriterUUID. Open checks each segment
// of the commit: the length the commit lists, the magic, the footer's
// bounds, the footer's checksum against the commit's, the index; the
// whole file's checksum is recomputed by whoever stages the file
// (recoverd, as it writes it), not at Open nor at Publish. A segment that
// neither the commit nor a CommitRef (a pin) references is deleted after
// every commit and at Open. A no-op never enters a segment.
//
// # Op records
//
// One op (op.go) is encoded the same way in a segment and in the op log:
//
//	uvarint keyLen, key, varint seqno (zig-zag), uvarint primary term,
//	kind byte (0 index, 1 delete, 2 no-op), uvarint valueLen, value
//
// A key or value longer than 64 MiB, or an unknown kind, is ErrCorrupt.
//
// # The op log
//
// The op log (oplog.go, oplog_open.go) of a commit is the directory
// oplog/<epoch>/ its oplog_epoch names. It holds generation files
// <gen>.log, numbered from 1; each record is
//
//	u32 payload length (1 to 2*64 MiB+64), u32 CRC32C of the payload, payload
//
// the payload an op record with no byte after it. Every write appends its
// ops to the newest generation before it is acknowledged (see Durability of
// writes). The log opens that file and takes a write buffer (256 KiB, from
// a pool) at an append, and gives both back once every record appended is
// durable: an idle shard holds one descriptor (its LOCK) and no buffer, and
// CloseIfIdle closes a shard nothing uses (a registry of many shards holds
// only those in use). A flush starts a new generation (the current one is fsynced and
// closed, the next created and the directory fsynced) so that old ones can
// be dropped whole: after a commit, a generation other than the newest that
// no reader holds (a digest in progress) is deleted when it holds no op, or
// when its highest seqno is below the commit's min_retained_seqno and at or
// below its local checkpoint. So the log keeps every op above the local
// checkpoint (which Open replays), the Options.RetainOps ops below it, and
// every op a live retention lease asks for: a flush raises the floor
// towards local_checkpoint+1-RetainOps, never above the lowest live lease
// and never down (seqno.Leases.AdvanceFloor); a publish sets it to the
// published local_checkpoint+1. Open reads every generation in order: ops
// above the commit's local checkpoint go to the memtable (the count is
// logged), the others only raise the max seqno; after a promotion and a
// flush it replays only the ops written since.
//
// Reading the log (Open's replay, ReadOps) allocates per 64 KiB, not per
// op (arena.go): each record's payload is read into a chunk that is never
// written again, and the op decoded from it keeps its key and value there
// (the memtable, or a reader's batch, then holds the chunk). A write's
// batch costs one allocation too: the memtable keeps pointers into the
// write's own copy of the ops, and the terms of a batch are noted once
// per run of one term.
//
// An epoch is the op log of one content: Publish moves the staged ops into
// a new epoch oplog/<epoch+1>/ and switches to it with its commit, so that
// the ops of the old and the new content never mix, whenever a crash
// strikes. Open and Sweep delete every entry of oplog/ but the commit's
// epoch: older ones a publish replaced, a newer one a crash left before
// its commit.
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
// # Leases
//
// The leases file is JSON, {"version": 1, "leases": [...]}, each lease its
// id, retaining_seqno, source, timestamp (taken or last renewed) and, when
// taken through the authenticated peer API, holder. Package seqno writes it
// atomically under its own lock, outside the shard's. A file that does not
// parse fails the open: forgetting leases would let retained history go.
//
// A copy's lease (copylease.go) also records its own ttl (nanoseconds):
// HandOff replaces a recovery's lease (minutes, LeaseTTL) by the lease of
// the recovered copy, id "copy-<node>", held by the copy, in one write of
// the file; it lives for CopyRetention (default 12 hours) after the last
// AckCopy, which renews it and raises it to the copy's local
// checkpoint+1.
//
// # Staging
//
// A recovery stages what it receives in staging/<recovery-id>/
// (StartStaging; staging.go, staging_ops.go). Its caller writes the files
// of the new commit into the directory (Staging.Dir) under their final
// names, and verifies and fsyncs them itself: recoverd does, through the
// engine contract (internal/staging, which also keeps its own records
// there, under dot-names and progress.staged/, to resume a partial file).
// The ops fetched with them are staged in ops.staged/, an op log of its
// own (one generation, not fsynced until Publish closes it). Nothing in a
// staging directory is read as data until Publish moves it into place.
// Open removes staging/ whole, unless Options.KeepStaging; Close removes
// the directories of the stagings still open in this process; Abandon
// removes one.
//
// A recovery that the node's stop interrupts resumes from what it staged.
// Suspend ends the staging's use in this process and keeps its directory;
// the next process opens the shard with KeepStaging and calls StartStaging
// with the same id, which hands the directory back as it is (the recovery
// checks what it finds before it trusts it; its staged ops it discards
// and fetches anew). Sweep removes the staging directories of recoveries
// neither open in this process nor named to keep.
//
// A shard that a recovery creates is opened with Options.Uncommitted: its
// directory holds no commit point until the staging publishes (it holds
// LOCK, oplog/00000000/ and staging/), so List, Exists, ReadMetadata and
// Open without Create see no shard, and Flush, Merge, Promote and
// AcquireCommit refuse with ErrNoCommit. Its first Publish writes
// generation 1 and epoch 1. A recovery that fails leaves a directory
// without a commit point, which the caller removes: nothing of it was
// ever a shard.
//
// # Publish and a crash
//
// Publish (publish.go) makes a file set (staged files and files of the
// current commit to keep) and the staged ops the shard's content with one
// commit point. It checks first, changing nothing: every listed file is
// either staged with exactly the metadata given, or the same (below) as the
// current commit's file of that name; a staged file must not replace a
// different file of the current commit (ErrConflict). A staged file was
// verified and fsynced by its writer, every error checked (recoverd does
// it, each file on a descriptor of its own: a syncfs would not report a
// writeback error another descriptor has seen); Publish checks its
// length, its footer (magic, bounds, checksum, index) and its writer UUID,
// and does not read it whole. Then, in order:
//
//  1. the files are renamed into the shard directory, which is fsynced;
//  2. ops.staged/ is closed (its last generation fsynced) and renamed to
//     oplog/<epoch+1>/ (an empty one is created when no op was staged), and
//     oplog/ is fsynced;
//  3. commit_<gen+1> is written atomically, naming the files, the new
//     epoch, the data given, and min_retained_seqno = local_checkpoint+1;
//  4. the shard switches to the new content (the new epoch's ops above
//     the local checkpoint replayed into the memtable); the old epoch, the
//     commit points below the new one, the segments nothing references
//     and the staging directory are deleted.
//
// A crash before step 3 completes leaves the old commit, so the shard
// reopens as it was: moved files no commit names are deleted as
// unreferenced segments, a new epoch directory as not the commit's, the
// staging directory by Open (or kept with KeepStaging, for the recovery to
// resume). A crash after step 3 reopens the new content: its files, and its
// staged ops replayed from the new epoch above the local checkpoint; what
// step 4 did not delete, Open does (Sweep, for a kept staging). Any error
// before step 3 leaves the shard at its previous commit. (The failpoints
// publish.before-rename, publish.files-moved, publish.before-commit and
// publish.after-commit mark these steps for the crash tests.)
//
// Flush and Merge (which flushes first) follow the same order on a smaller
// scale: the op log is rolled (everything appended is durable), new
// segments are written and fsynced, the directory fsynced, then the commit
// point is written, and only then are old segments, commit points and op
// log generations deleted. A crash before the commit reopens the old
// commit with its op log intact.
//
// # When two files are the same
//
// Two files are the same (FileMeta.SameAs, DESIGN.md section 3) when their
// names, lengths and checksums match and, where both carry one, their
// writer UUIDs. Diff sorts a source's files into identical, different and
// missing by this rule; Publish keeps a current file only when it is the
// same as the one listed; a staged file, in contrast, must match its
// metadata exactly (writer UUID included).
//
// # Locking
//
// The LOCK file is flock'ed (exclusive, non-blocking) by Open and released
// by Close: a second process opening the shard fails with ErrUnavailable.
// ReadMetadata reads the newest commit point without it, for offline
// tools. Within a process, the Shard's RWMutex guards its state and
// serialises flush, merge, publish, promote, sweep and the application of
// ops against each other; Get, Scan and the read accessors take it shared. A
// write holds it to append its ops to the op log and again to apply them,
// not while it waits for the fsync. A digest holds it only to pin what it
// reads. Below it, the op log has a mutex for its buffer and generations,
// and a second one, taken first, held by the one goroutine running an
// fsync; the cached digest has its own. A Staging's mutex guards its staged
// ops: Publish holds it and then the shard's; Close marks the shard closed
// under the shard's, releases it, and then ends each open staging under
// the staging's (a Publish waiting for the shard's lock then answers
// ErrClosed). A CommitRef (AcquireCommit) keeps its commit's
// files from deletion until Release: the counts are kept under the shard's
// lock, and every deletion of unreferenced files consults them.
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
// apply or drop their ops (releasing the shard's lock, which they need; no
// write starts meanwhile), then fills every seqno below the max seqno that
// the copy never received with a no-op of the new term (Elasticsearch's
// fillSeqNoGaps), fsynced before the commit that records the new term, so
// the local checkpoint reaches the max seqno: otherwise one hole left by
// the old primary would hold the checkpoint back for good, the op log would
// never be trimmed and every open would replay all history since the hole.
// A no-op (OpNoOp) has no key and no value and changes no document; the op
// log stores and replays it, ReadOps and the peer op stream carry it to
// replicas and recoveries, and no segment ever holds one.
//
// # Writes refused during a recovery
//
// While a recovery onto this node replaces the copy, RefuseWrites makes
// IndexBatch, Delete, Merge and Promote answer ErrWritesRefused (naming
// the recovery) until ResumeWrites: the publish would drop what they
// wrote. Apply and Flush go on (a publish replaces ops applied before it;
// the recovery fetches the same ops from its source). Refusals are kept
// in memory, per recovery id.
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
