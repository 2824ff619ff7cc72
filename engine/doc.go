// Package engine is the contract between recoverd and a storage engine,
// written for the authors of engines. recoverd plans recoveries, moves
// bytes between nodes and from snapshot repositories, replays ops and
// checks the result; the engine stores the shards. This package says what
// recoverd needs of an engine to do that, and nothing more: the interfaces
// in engine.go, the data types in types.go and info.go, the errors in
// errors.go, and the invariants below, which the interfaces cannot say.
//
// An engine implements Engine (the node: its shards, and the node-wide
// calls of a recovery onto it), Shard (one committed copy: Reader,
// Retention, Sweep), Pin (a commit kept readable), Target (a copy a
// recovery writes into) and Staging (one recovery's incoming files and
// ops). engine/embedded runs the reference engine (package shardstore) in
// recoverd's own process, the default. The remote implementation speaks
// the same contract as EngineService, over gRPC on a Unix socket, to an
// engine process beside recoverd (cmd/shardd is the reference engine as
// such a process); a team's own engine serves EngineService. Every
// implementation passes the one acceptance suite, engine/enginetest, as
// every Thanos bucket passes objstore's AcceptanceTest.
//
// The interfaces are modelled on hashicorp/raft's LogStore, StableStore and
// SnapshotStore: each small, each method documented for the implementer,
// the error sentinels part of the contract.
//
// # What crosses the contract, and what does not
//
// File bytes never cross it. On a source node recoverd pins a commit
// (Reader.Pin) and reads its files itself, at the paths the pin hands out,
// to send them to the target node (with sendfile where it can). On the
// target node recoverd writes the incoming files itself into the directory
// a Staging hands out (Staging.Dir), at any offset, checks every chunk,
// verifies each whole file's length and CRC32C, fsyncs each file, and only
// then asks the engine to Publish. Both processes therefore see the same
// data volume: in process trivially, beside each other as two containers
// sharing it. Paths are in recoverd's view of the volume (a remote
// client maps the engine's paths, relative to its data directory, onto
// its own mount).
//
// Ops do cross it (ReadOps, Staging.AppendOps, Target.Apply): they are
// small, and their content is the engine's business. So do metadata,
// leases and digests.
//
// # A copy, as the contract sees it
//
// A shard copy is a commit plus the ops above it. A commit (Metadata) is a
// set of immutable files (FileMeta: name, length, CRC32C, writer id) and
// its commit data (CommitData: history UUID, primary term, the highest term
// above the global checkpoint, max seqno, local and global checkpoints, the
// lowest seqno still retained, writer and format versions). Every op has a
// seqno, from its primary, and the primary term it was assigned under
// (package seqno). The local checkpoint is the highest seqno at or below
// which every op is processed and durable; the max seqno the highest seen;
// the global checkpoint the primary's, the lowest local checkpoint of the
// in-sync copies, as far as this copy knows it. A history UUID names one
// linear history of ops: copies of different histories never exchange ops.
//
// # Invariants an engine keeps
//
//  1. A commit is atomic with its seqno data. The files a commit lists and
//     its commit data become the copy's content in one durable step: after
//     a crash the copy is at the old commit or at the new one, never at a
//     checkpoint ahead of the files. Everything a commit names is durable
//     before the commit is.
//  2. Published files are immutable. A name, once in a commit, names those
//     bytes for as long as any commit or pin lists it; the engine never
//     rewrites a file in place and never reuses a name for other bytes
//     (recoverd compares files across copies and snapshots by name,
//     length, checksum and writer id: FileMeta.SameAs). A file's CRC32C
//     (Castagnoli) covers every byte but the last four, which hold it,
//     little-endian: a file verifies alone.
//  3. Seqnos are dense below the local checkpoint: every seqno at or below
//     it is processed, an op or a no-op, and durable. Above it there may be
//     gaps (a replica applies ops in any order). A promoted primary fills
//     the gaps below its max seqno with no-ops of its new term, so that its
//     checkpoint reaches its max seqno. Max seqno >= local checkpoint >=
//     global checkpoint, in every commit and live.
//  4. Ops carry their term, everywhere: in the engine's log, in ReadOps, in
//     Apply. A copy's own term (CommitData.PrimaryTerm) changes only by a
//     promotion or by a recovery (Publish takes the commit's, AdoptTerm the
//     source's), never from the terms of the ops it receives. Each commit
//     records in MaxTermAboveGlobalCheckpoint the highest term of the ops it
//     holds above its global checkpoint: the planner trusts only that to
//     tell whether those ops may differ from a newer primary's.
//  5. An op of a newer term for seqnos the copy holds above its global
//     checkpoint: those may be ops an old primary sent to this copy alone.
//     An engine that can roll back to its global checkpoint may do so and
//     take the new ops (Elasticsearch resets the copy). An engine that
//     cannot, as the reference engine, refuses the whole batch, changing
//     nothing (ErrStaleTerm), and keeps saying so in its commit: a recovery
//     from the new primary then replaces the copy. Neither keeps both ops
//     of a seqno. Ops at or below the global checkpoint are final; an op of
//     a term the copy knows, for a seqno it has processed, is skipped.
//  6. The retained ops are readable. ReadOps serves every op in
//     Info.Retained, from the retention floor to the max seqno; the floor
//     never rises above the lowest retaining seqno of a live lease, never
//     falls (but a Publish resets it to the published local checkpoint
//     + 1: the ops below are in the files), and is durable with the commit
//     (CommitData.MinRetainedSeqNo).
//  7. Nothing staged is data. A staging's files and ops are not part of the
//     copy, not read, not listed, until Publish; Publish is the only way
//     they become the copy's.
//
// # What a crash may leave, and what opening cleans
//
// A crash (of the process, or of the machine) may leave: a write cut short
// (a temp file, an incomplete last record of an op log), files a commit
// was about to name, a commit that was about to be written, a Publish at
// any step, stagings of recoveries in progress, pins and refusals of the
// process that died, and copies a recovery created without a commit.
// Opening a copy (the engine's start, or a lazy open) returns it to its
// last commit plus the durable ops above it: it deletes temp files, files
// no commit references, whatever a Publish left before its commit, and
// repairs a log only at its tail (an incomplete last record; a bad record
// followed by good ones is ErrCorrupt, a read error ErrUnavailable, and
// neither changes anything). It keeps every staging directory: recoverd
// resumes a recovery from what it staged, and Sweep removes the stagings
// of recoveries that are not running. Pins and write refusals do not
// survive the process that held them; retention leases do. A copy without
// a commit is left for SweepUncommitted, which recoverd calls at start.
//
// Unreadable is not corrupt. Only a checksum or format failure is
// ErrCorrupt and lets a recovery move the copy aside (OpenTarget moves it,
// never deletes it). EIO, EMFILE, EACCES, a lock held by another process,
// a format newer than the engine reads: ErrUnavailable, the copy stays
// where it is, reported by Shards, and opens again once the cause is gone.
//
// # What a pin promises
//
// A pin (Reader.Pin) keeps one commit's files readable at the paths
// Pin.Path gives, with the bytes the commit lists, however many commits
// follow (a flush, a merge, a Publish onto the copy), until Release or,
// with PinOptions.TTL, until the TTL has passed without Renew. recoverd
// holds a pin while a peer reads the commit's files or a snapshot uploads
// them. When the pin ends, files no other commit or pin needs may go; a
// file descriptor opened before stays readable after (POSIX unlink). Pins
// live in the engine's memory: they end with the process that took them
// (a remote engine releases the pins of a client that is gone, or lets
// their TTL do it).
//
// # What a lease promises
//
// A retention lease (Retention) keeps every op at or above its retaining
// seqno readable by ReadOps until it expires (not renewed for
// Info.LeaseTTL) or is released. A lease below what the copy still
// retains cannot be taken (ErrCompacted). Leases are durable (a lease
// that vanished with a restart would let the history a recovery relies on
// go), bounded per holder, and renewed or released only by their holder
// (ErrNotHolder). A recovery holds one on its source from before the
// files move until it ends; a lost lease (ErrLeaseLost) makes it re-plan,
// never go on as if the history were still there.
//
// # Writes while a recovery replaces a copy
//
// From the moment recoverd accepts a recovery onto a shard until it ends,
// the engine refuses primary writes to it (Engine.RefuseWrites): index,
// delete, merge, promote answer ErrWritesRefused naming the recovery.
// The publish would replace what they wrote. Replicated ops and flushes go
// on: a Publish replaces ops applied before it, and the recovery's
// catch-up fetches the same ops from the source after it. A refusal lives
// in the engine's memory until ResumeWrites (or the engine's end), and
// outlives the recoverd that asked for it: while recoverd restarts, an
// engine process beside it goes on refusing. A recoverd that starts
// refuses again for the recoveries it resumes, before they write (the
// engine may have restarted), and lifts the refusals of the recoveries it
// cannot resume. An engine that restarts while recoverd runs forgets its
// refusals: the remote client asks again for every refusal it holds when
// it reconnects, before it forwards any other call.
//
// # Staging and publish
//
// A recovery stages into one Staging (Target.StartStaging): recoverd writes
// the commit's files into Staging.Dir and the engine stages the ops
// fetched with them (AppendOps). The staging survives Suspend and a
// restart of either process: StartStaging with the same recovery id hands
// the directory back as it was, and recoverd checks what it finds against
// its own records before it trusts a byte of it. Abandon deletes it;
// Sweep deletes one no running recovery names.
//
// Publish(files, commit) makes the file set and the staged ops the copy's
// content with one commit. The files are the whole new set: staged files,
// under their final names, and files of the current commit to keep (the
// same by FileMeta.SameAs). It checks before it changes anything: every
// staged file listed is in Dir with exactly the metadata listed (an engine
// checks what it cheaply can, the length and its own format's footer;
// recoverd verified the content and fsynced each file before it called
// Publish), no staged file replaces a different file of the same name
// (ErrConflict), the commit data holds together. Then, in this order:
//
//  1. the staged files move into the copy and the move is durable (the
//     directory fsynced);
//  2. the staged ops become the new content's op log, durable;
//  3. the commit is written, atomically and durably: the commit point;
//  4. the copy switches to the new content (the staged ops above the
//     published local checkpoint are processed, the max seqno is the
//     larger of the commit's and the ops'), the retention floor becomes
//     the published local checkpoint + 1, and what the old content alone
//     used (files no pin holds, the old op log) and the staging go.
//
// A crash before step 3 completes reopens the old content, whole; a crash
// after it the new one, whole, with its staged ops; what step 4 did not
// delete, opening or Sweep does. An error before step 3 leaves the copy at
// its previous commit and the staging in place, for a retry or Abandon.
// The commit data given is the source's (history UUID, checkpoints, term,
// versions); the engine sets MinRetainedSeqNo itself. A copy created by
// OpenTarget gets its first commit from its first Publish: only then is it
// a shard of the node.
//
// # Catch-up, and handing the copy over to replication
//
// After Publish (or at once, for a recovery by ops alone) recoverd replays
// the ops its source took meanwhile (Target.Apply), in rounds, until the
// source has nothing newer, raises the copy's term to the source's
// (AdoptTerm), commits (Flush) and compares digests at the seqno the copy
// reached (DigestAt on both nodes).
//
// The copy then joins replication, and the ops between the end of the
// recovery and the first op replication delivers must not be lost.
// Replication is the engine's (recoverd does not move live writes). The
// hand-off (Retention.HandOff, called on the source, through the peer API)
// says where it starts and who keeps the history until it does:
//
//   - At which seqno: From = the copy's local checkpoint after the last
//     catch-up round, plus one. Every op below From is in the copy
//     (applied and flushed); the source's replication sends the copy every
//     op from From on that the copy does not hold (those the source took
//     since the last round, and all later ones).
//   - Who holds the lease: the recovery's lease on the source becomes the
//     copy's lease, in one durable step (no instant holds neither),
//     retaining From. From then on the source engine holds it, not
//     recoverd: its replication renews it and raises its retaining seqno as
//     the copy acknowledges ops (to the copy's local checkpoint + 1), and
//     it expires only once the copy has acknowledged nothing for the
//     engine's copy retention period (Elasticsearch keeps a peer recovery
//     retention lease 12 hours), so a copy that restarts within that
//     period recovers by ops alone. It is listed in Info.Leases, where the
//     planner sees it.
//   - An engine without replication of its own answers
//     errors.ErrUnsupported; recoverd then releases the recovery's lease as
//     it ends, and the ops the source takes after the last round reach the
//     copy by whatever replicates them, outside the contract.
//
// # Errors
//
// Every error wraps one sentinel of errors.go: not found (ErrNotFound; a
// copy being created also ErrNoCommit), unavailable versus corrupt
// (ErrUnavailable, ErrCorrupt), closed (ErrClosed), bad input
// (ErrInvalidName, ErrInvalidArgument, ErrOutOfRange), history (
// ErrHistoryMismatch, ErrCompacted, ErrStaleTerm), leases (ErrLeaseLost,
// ErrLeaseExists, ErrNotHolder, ErrTooManyLeases), pins (ErrPinLost),
// staging (ErrStagingExists, ErrConflict), refused writes
// (ErrWritesRefused). recoverd maps each to one gRPC status for its peers
// (transfer.ToStatus); an error that wraps none is internal.
//
// # Input
//
// Every name an engine is handed (index, file, recovery, pin and lease
// ids) comes from outside and is checked with ValidateName before it
// touches a path: no separator, no "..", a fixed character set, a length
// bound (ErrInvalidName). Shard ids are checked with ShardID.Validate,
// seqno ranges with seqno.Range.Validate (ErrInvalidArgument).
//
// # Concurrency
//
// Every method may be called from many goroutines at once: a recovery
// stages ops while its files arrive, replication applies ops to a copy a
// recovery catches up, peers read a source while it takes writes. A Shard
// is a handle: cheap, and valid until the engine closes the copy
// (ErrClosed: ask Engine.Shard again); a Publish onto a copy keeps its
// handles valid, on the new content.
//
// # Where the types live
//
// The types the contract speaks (ShardID, FileMeta, CommitData, Metadata,
// Op, OpKind, the sentinels) live here, in a leaf package that imports
// nothing of recoverd's but seqno, so that an engine, the reference one
// included, can implement the contract without importing recoverd's
// packages, and recoverd's packages can speak it without importing the
// reference engine. Package shardstore declares its names for them as
// aliases (shardstore.FileMeta is engine.FileMeta): shardstore imports
// engine for its vocabulary, and nothing else of ours but seqno and
// internal/. (DESIGN.md section 1, "shardstore and seqno import nothing of
// ours but internal/", is amended to "... but engine's types and
// internal/".)
//
// # Engines that are not log-structured
//
// The contract assumes what a log-structured engine (an LSM tree, Lucene,
// the reference engine) has for free: immutable files named once, a
// commit point that lists them, and an op log by seqno. An engine that
// updates pages in place (a B-tree with a write-ahead log) must build
// them: a pin means a checkpoint or copy-on-write snapshot whose files
// stay fixed while the engine writes on; "files" are then the snapshot's
// (or its pages'), with stable names and a CRC32C per file; the op log
// must be kept by seqno with terms beyond what its own recovery needs,
// for as long as leases ask; Publish must swap a whole new file set in
// atomically (a directory rename, or a new data file plus a pointer);
// and staged files written by another process must be adopted without a
// rewrite. Each is possible; none is free.
package engine
