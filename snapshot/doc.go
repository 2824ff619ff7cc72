// Package snapshot stores incremental shard snapshots in a repository and
// downloads them for recoveries (DESIGN.md section 4).
//
// # Repositories
//
// A Repository is a small key/value store of immutable objects with
// '/'-separated keys: Put, Get, GetRange, Stat, List, Delete, String,
// Close. Two implementations pass one contract test suite:
//
//   - LocalRepository (file:///path), the embedded default: no server;
//     every Put streams into a temp file in the target's directory, fsyncs
//     it, renames it into place and fsyncs the directory; Delete fsyncs the
//     directory too.
//   - S3Repository (s3://bucket/prefix) on minio-go v7, tested against a
//     real MinIO. Endpoint, region, credentials and TLS come from
//     S3Options, the URL's query (endpoint=, region=, tls=) or the
//     environment (RECOVERD_S3_*, then AWS_ACCESS_KEY_ID /
//     AWS_SECRET_ACCESS_KEY). Credentials appear in no String, error or
//     log; a URL holding credentials is refused. Uploads carry a CRC32C
//     trailer the server checks (S3Options.NoTrailingChecksums falls back
//     to SHA-256 payload signing for stores without trailers). A failed
//     multipart upload is aborted by minio-go (bounded by RequestTimeout);
//     one a crash interrupts is expired by the store (MinIO: stale uploads
//     after 24h; on AWS use a lifecycle rule).
//
// OpenRepository(url, S3Options) opens either from a URL. A
// repository is named one way for recoverd and recoverctl (location.go):
// ParseLocation reads the URL and the flags given beside it (--s3-endpoint,
// --s3-region, --s3-insecure, the same in both commands), which name the
// same settings as the URL's query (endpoint=, region=, tls=); either form
// works, both when they agree, and a disagreement is refused with both
// named.
//
// # A distributed store
//
// The S3 endpoint is meant to be a load balancer in front of a
// distributed store (MinIO erasure sets, S3), and it is tested against
// MinIO in distributed erasure-coded mode: 4 servers with one drive each,
// 2 data and 2 parity shards per object. A server lost in the middle of a
// Create or a Download changes nothing (the store keeps its read and
// write quorum; at most a request fails and is retried). A store that
// lost its quorum does not refuse requests but holds them without
// answering: the request deadlines below end them, as ErrUnavailable
// errors that read "no answer within <d> (the store is hung, overloaded
// or has lost its quorum)". Its listings may still answer from the
// drives left (MinIO lists from one), but no manifest or blob can be
// read, so unavailable is never taken for empty.
//
// # Counting requests
//
// Every S3 request (every attempt: retries and multipart parts included)
// goes through a counting http.RoundTripper under minio-go. It is counted
// by type, from its method and query (list, get, put, head, delete;
// multipart initiate, parts and complete are put, an abort is delete),
// and by the kind its context carries (CountRequests: recovery, snapshot,
// cleanup; other when untagged): in recoverd_s3_requests_total{op,kind}
// when S3Options.Metrics is set (NewRequestMetrics registers it on the
// registry it is given, every series at zero), and in the context's
// RequestCounter if it has one (a recovery's, a snapshot's).
//
// # Layout
//
// The package names objects by logical keys:
//
//	<index>/<shard>/blobs/<file-name>-<random>        one uploaded file
//	<index>/<shard>/snapshots/<snapshot-id>.json      its manifest
//	<index>/<shard>/marks/<file-name>-<random>        a blob's deletion mark
//	<index>/<shard>/bad/<file-name>-<random>          a blob found corrupt or missing
//
// A repository opened by URL (Location.Open, OpenRepository) stores them
// in its key layout (layout.go): a repository first used empty is hashed,
// each key under "<hh>/", the first two hex digits of SHA-256 of
// "<index>/<shard>", and says so in recoverd-layout.json at its root, so
// that a fleet's keys spread evenly over 256 leading prefixes whatever its
// index names (S3 limits requests per prefix; SCALE.md, "The snapshot key
// layout"). A repository written before layouts existed (objects, no
// marker) stays flat, keys as they are. The layout is found by the first
// request that can read the repository; one that cannot be read fails its
// calls as unavailable and is never taken for empty.
//
// Snapshot ids are "s-<UTC start time to the ms>-<6 hex>", so sorting ids
// sorts snapshots by start time (by the age of the commit they hold).
// Every upload gets a fresh blob key: a blob a manifest references is
// never overwritten.
//
// A manifest (JSON, manifest_version 1) records the snapshot id, the shard,
// start and end times, the commit generation, the commit's user data
// (history UUID, max seqno, local and global checkpoints, min retained
// seqno, primary term, writer version, format version) and per file its
// name, length, CRC32C, writer UUID and blob key. Decoding is strict:
// unknown fields, trailing data, a newer version, a file name that is not a
// plain shardstore name or a blob key outside the shard's blobs/ prefix make
// an ErrCorruptManifest error.
//
// # Consistency rules
//
//   - Data first, manifest last (Thanos' pkg/block rule): Create uploads
//     every missing blob, then writes the manifest. A blob no manifest
//     references is an unfinished upload; RemoveUnfinished marks those
//     older than a grace period (their LastModified time) for deletion,
//     which protects an upload in progress.
//   - Deletion is the reverse: Delete and GC remove manifests first, then
//     mark for deletion only the blobs of the deleted manifests that no
//     remaining manifest references. A crash in between leaves
//     unreferenced blobs, never a manifest pointing at missing data.
//   - Blobs are deleted in two phases, without locks (deletion.go, as
//     Thanos' deletion marks): marked first; deleted by Delete, GC or
//     RemoveUnfinished, in any process, once the mark is older than the
//     deletion delay (DeleteOptions.Delay, default 1h) and no manifest
//     references the blob. Create never reuses a marked blob and checks
//     every blob it names just before and after writing its manifest,
//     uploading again (under new keys) the files whose blobs another
//     process marked or deleted meanwhile: so a snapshot, gc, delete or
//     sweep in another process never leaves a manifest naming a removed
//     blob. The upload grace must still exceed a snapshot's uploads (S3
//     dates an object from the start of its upload): a sweep with a
//     shorter one makes a Create fail (ErrConcurrentDeletion), safely.
//   - Unavailable is never empty: a listing or read that fails returns an
//     ErrUnavailable error (ErrAccessDenied for refused credentials, which
//     is also ErrUnavailable). A missing bucket or repository directory is
//     ErrUnavailable, not "no snapshots". Only a repository that answered
//     gives an empty List or an ErrNotFound from Latest.
//   - Nothing is deleted because something could not be read: GC and
//     Unfinished stop whole if any manifest of the shard cannot be read
//     (which snapshots GC keeps is PlanGC, pure, also used for dry runs);
//     Delete of one snapshot removes its manifest but keeps its blobs when
//     another manifest is corrupt.
//   - Incremental: a commit file the same (name, length, CRC32C and, where
//     both carry one, writer UUID; DESIGN.md section 3) as a file of a
//     readable manifest whose blob is listed is not uploaded again; the
//     result reports uploaded vs reused files and bytes. Files are checked
//     against their CRC32C as they are uploaded, so a damaged local file
//     is never stored.
//   - Create pins the commit (Source.Pin, the engine contract) for the
//     whole upload, so a flush or merge meanwhile cannot delete its files.
//   - Create, Delete, GC and RemoveUnfinished of one shard may run in
//     several processes at once (a node's snapshot, every node's cleanup
//     sweep, an operator's recoverctl), by the deletion protocol above.
//
// # Bad blobs and verification
//
// A blob found corrupt (length or CRC32C differ from the manifest's) or
// missing, by a recovery's download or by Verify, gets a bad-blob mark
// (badblobs.go: MarkBad; JSON with the blob, file, snapshot, cause,
// detail, who found it and when). BadBlobs is the one reader: planning
// leaves out a snapshot that references a marked blob, Create uploads the
// file again under a new key instead of reusing the blob, Verify clears
// the marks of blobs that read back whole or that no manifest references.
// A mark never makes anything be deleted. Verify (verify.go) reads every
// blob a readable manifest references, once, throttled and a few at a
// time; a repository that cannot be read stops it without marking.
//
// # Retries
//
// A repository call is one attempt with deadlines: S3 metadata requests
// and the wait for response headers are bounded by RequestTimeout, body
// reads by an idle deadline (ReadIdleTimeout: a Read that gets no byte for
// that long fails, so a SIGSTOPped or hung server cannot block us), a Put
// by RequestTimeout plus its size at MinUploadRate. minio-go's own retries
// are off, so a call is retried under recoverd's one retry policy
// (internal/retry), with one budget: S3Options.Retry for calls on the
// repository, Downloader.Retry for downloads, whose zero fields are
// retry.Repository's (from 100ms, 1.5 times longer each attempt up to 5s,
// with jitter, for 30s without progress). Transient errors (network
// errors, connection resets, timeouts, 5xx, SlowDown: the repository's
// errors say so, and retry.IsTransient, the one classification, reads it)
// are retried; permanent ones (not found, access denied, missing bucket,
// checksum mismatch, corrupt manifest, a cancelled context) are returned
// at once. When the budget
// runs out the error says after how many attempts and how long; when the
// context ends it wraps both the cause and the last repository error.
//
// A server answers these errors by api/rpcerr's status table: ErrNotFound
// is NotFound (reason SNAPSHOT_NOT_FOUND), ErrUnavailable and
// ErrAccessDenied Unavailable (REPOSITORY_UNAVAILABLE),
// ErrConcurrentDeletion Aborted, ErrChecksum and ErrCorruptManifest
// DataLoss.
//
// # Downloads
//
// Downloader.Download fetches files of a manifest into a recovery's
// staging area (internal/staging): FileConcurrency files at once, each
// split into PartSize ranged GETs, PartConcurrency at once, written at
// their offsets, then the staged file is verified (length and CRC32C). A
// part that fails transiently is resumed from its last written byte. The
// context governs every request: on a cancel or on the first failure
// every in-flight request is cancelled, Download waits until all have
// returned, removes every file it staged, and returns an error naming the
// file. It never chooses a
// fallback; the recovery layer does. A Throttle hook (bytes) lets the
// recovery layer share one bandwidth budget with peer transfers; OnBytes
// and Stats report progress.
package snapshot
