// Package transfer moves the bytes of a recovery between nodes: the
// PeerService server (PeerServer) that a source runs, and the client side
// a target uses (FetchFiles, FetchOps, pins and leases), plus the node-wide
// bandwidth budget (Throttle), checksums, compression, retries and the
// gRPC tuning of the daemon (ServerOptions, DialOptions). The source side
// exports its counters (PeerServer.RegisterMetrics, metrics.go).
//
// The PeerServer serves any storage engine through the engine contract
// (package engine; ShardProvider is the part it needs): a shard per peer
// call (Engine.Shard), its state (Reader.Info), pins (Reader.Pin), ops
// (Reader.ReadOps), leases (Retention) and digests (Reader.DigestAt). File
// bytes never cross the contract: the server opens each file at the path
// the engine's pin hands out (Pin.Path) and reads it itself.
//
// # Files
//
// A target copies the files of one commit of the source. It first pins
// that commit (PinCommit): the pin holds an engine pin, so the
// commit's files stay on disk even after the source flushes or merges,
// until the target releases it (ReleasePin) or the pin has been idle for
// its TTL (default 1 minute, at most 10): no RenewPin and no FetchFile
// stream open on it. An expiry timer per pin, not a sweeper goroutine,
// releases it, so a target that crashes or is partitioned away never leaks
// a pin, and a closed PeerServer leaves nothing running. Releasing a pin a
// stream still reads from only takes effect when that stream ends. The
// number of pins is bounded, on the node and per holder (ResourceExhausted,
// reason TOO_MANY_PINS). A client may choose the pin's id (PinCommitAs)
// and record it before it asks, so that it can release the pin even when
// the answer never came; asking again with the id (same shard, holder and
// caller) answers the same pin.
//
// # Holders
//
// The holder of a pin or lease is the caller's authenticated identity
// (PeerIdentity: the node id of its certificate, see identity.go), not
// what the request says. Only the holder may renew or release a pin, or
// read under it, and renew or release a lease (PermissionDenied otherwise;
// seqno.ErrNotHolder); a lease records its holder durably. One holder
// holds at most PeerServerConfig.MaxPinsPerHolder pins and
// MaxLeasesPerHolder leases per shard (TOO_MANY_LEASES). Without
// authentication every caller is the one anonymous holder.
// KeepPin renews a pin every TTL/3 until its caller is done with it (one
// keeper, KeepAlive, serves pins and leases alike); FetchFiles runs it
// while it runs unless the caller keeps the pin itself (FetchOptions.PinKept),
// so backoffs longer than the TTL do not lose it.
//
// FetchFile streams [offset, offset+length) of one file in chunks of raw
// bytes (default 4 MiB, the client may ask for 64 KiB to 4 MiB; at most
// 1 MiB on a gRPC stream, whose per-message buffers grow with the
// message). While the
// source's bandwidth budget is set, chunks (and op batches) are at most an
// eighth of a second of it (at least 64 KiB): the sender waits for the
// budget before each message and the receiver hears nothing meanwhile, so
// whole 1 MiB chunks shared by a few streams under a low budget would keep
// them silent past the target's idle deadline, cut and resumed at the same
// offset forever. Each chunk
// carries its offset, its uncompressed length and the CRC32C of its
// uncompressed bytes; asked (FetchFileRequest.file_sums, as FetchFiles does),
// the chunk that ends a file carries the BLAKE3 sum of the whole file, which
// the source computed from the bytes as it read them to send (a file sent
// from an offset has its prefix read and hashed first), and the target
// compares it with its own running sum of what it wrote
// (FetchResult.Summed). Ops are summed the same way (OpsSum): asked
// (FetchOpsRequest.ops_sum), the source hashes the ops as it sends them and
// puts the sum on the stream's last batch if it holds every op of the
// range (its end at most the local checkpoint), and FetchOps compares it
// with its sum of what it received (OpsResult.Summed). GetShardDigest with
// ops_from answers the same digest of a range read from the op log, for
// ops that came without a sum: recovery's streamed check uses either.
// 4 MiB keeps per-message overhead (framing, a CRC, a zstd frame, a disk
// write) negligible and gives staging's O_DIRECT writes their size; a cut
// stream loses at most a chunk of work. The deadlines meant for silence
// count bytes, not chunks: the target's idle watchdog is re-armed by
// every read of a data connection that brings bytes, and the source's
// write deadline bounds each 1 MiB piece of a chunk, so a 4 MiB chunk
// behind a slow link is not taken for a dead peer.
//
// A client from Peers with EnableData (the daemon's, unless
// --data-conns=false) sends the same FetchFile request on a data
// connection instead (dataconn.go, server_data.go): a TCP connection to
// the peer listener, told from gRPC's by a plaintext magic, then TLS with
// the peer listener's config and its certificate check, one request, and
// FileChunks framed by a 5-byte head. The source writes a chunk's bytes
// from the buffer it read them into (writev), the target reads them into
// the buffer it writes from, at a 4096-aligned address (readAlignedChunk),
// so that staging writes a large file's chunks past the page cache
// (O_DIRECT): gRPC copied them into messages and HTTP/2 frames on the
// way. Everything else is the same code: the checks, the
// resume, the throttles, compression, cancel (which closes the
// connection). A source that does not answer the magic is fetched from
// over gRPC for the rest of the call. Over gRPC the target parses each
// chunk with a codec of its own (codec.go) whose data stays in gRPC's
// buffer until the chunk is written, and both paths take buffers from a
// pool whose tiers follow the chunk sizes (bufpool.go).
//
// The client checks every chunk (offset is the one expected, length
// within the file and the bounds, decompression yields exactly the declared
// length, CRC32C matches) before writing it at its offset in the staged
// file (internal/staging: recoverd writes the files into the directory
// the target's engine hands out); the file counts as received only once
// staging.File.Verify has checked its length and whole-file CRC32C (the
// footer) and its BLAKE3 sum matched the source's; a verified file is
// then synced behind the transfer (staging.File.SyncBehind), and the
// recovery makes every staged file durable before it publishes.
// Several files are in flight at once (default 8, errgroup.SetLimit),
// largest first so the last one to finish is a small one. Files up to
// 1 MiB go several per stream (at most 64 files and 8 MiB per stream:
// FetchFileRequest.more, each chunk naming its file by FileChunk.file),
// so 20,000 files of 100 KiB take a few hundred streams rather than
// 20,000 round trips; a batch cut short resumes at its first file not
// staged whole, from that file's last verified offset. A source that
// ignores more ends the stream after the first file and the client asks
// again for the rest. The source reads chunks into pooled buffers (gRPC
// has marshalled a chunk, or the data connection written it, by the time
// Send returns). A file that a
// previous attempt of the same recovery left complete and verified is not
// fetched again, and one it left partly staged resumes after the prefix it
// checked (staging.File.MarkGood; the area records it on disk every 8 MiB,
// so a target that restarted resumes there too, once the prefix checks
// again): a recovery that re-plans after the source restarted (its pins
// died with it), or resumes after its own node restarted, asks only for
// bytes it does not have.
//
// # Compression
//
// When the client accepts it, the server may compress a chunk with zstd at
// its fastest level (github.com/klauspost/compress/zstd, no frame checksum:
// the chunk CRC covers it), and sends the compressed form only when it is at
// most 90% of the raw size. Whether it tries is adaptive (adaptive.go): each
// pin measures the speed its raw chunks leave at (the budget wait plus
// Send, which blocks while the socket or the flow-control window is full:
// the network, the source's throttle or the target's pace) and zstd's
// speed and ratio on its chunks, and a chunk is compressed when
// compressing, sending the smaller chunk and decompressing it is quicker
// than sending it raw: link < zstd·0.75·(1 − ratio). The pin's first
// chunk and then one in 16 of its chunks do the other thing, to keep both
// estimates current, the interval doubling up to one in 256 while the
// decision holds. On loopback raw wins; behind a 200 Mbit/s link
// text-like data compresses. A chunk that misses the 90% switches
// compression off for the rest of its file, and after three such files
// for the rest of the pin: a file whose first chunk does not compress
// holds random or already-compressed values. Zstd rejects incompressible
// input quickly (about 4 GB/s here). Chunks under 4 KiB are sent raw. The
// decoder never produces more than a chunk's declared length (at most
// 4 MiB), so a hostile peer cannot make it allocate without bound.
// FetchOptions.NoCompression (or PeerServerConfig.DisableCompression)
// turns compression off altogether.
//
// # Retries
//
// A stream broken by a transient error (retry.IsTransient: gRPC Unavailable,
// DeadlineExceeded, ResourceExhausted, Aborted, a transport-level
// Internal such as RST_STREAM, connection resets, unexpected EOFs, an idle
// stream, a stream that ended early) is resumed from the last verified
// offset after an exponential backoff: recoverd's one retry policy
// (internal/retry, on github.com/cenkalti/backoff/v4), FetchOptions.Retry
// and OpsOptions.Retry, whose zero fields are retry.Peer's (from 200ms,
// 1.5 times longer each attempt up to 10s, with jitter). The budget
// (MaxElapsed, default 2 minutes, optionally a count) is time without
// progress: any verified byte resets it, so a long transfer that is cut
// now and then is never abandoned for its length alone, while a peer that
// is down for good is given up on in bounded time, with
// ErrRetriesExhausted (not transient). An idle watchdog cancels a stream
// that delivers nothing for IdleTimeout (default 30s): gRPC keepalive
// detects a dead connection, the watchdog also catches a live peer that
// is stuck. A corrupt chunk is
// refetched from the last verified offset, but a few (3) in a row at the
// same offset end the transfer with an error naming the file and wrapping
// engine.ErrCorrupt. Permanent errors (NotFound, InvalidArgument,
// FailedPrecondition, OutOfRange, a message over the 16 MiB bound, a file
// that does not verify, local write errors, cancellation) are never
// retried: a full disk (ENOSPC, EDQUOT: fsutil.IsNoSpace) fails the transfer at
// the first write, with "no space left on device" in its error. FetchOps resumes the same way,
// after the last op the caller's function accepted.
//
// # Ops, leases and errors
//
// FetchOps streams a seqno range in seqno order, in batches (default 10,000
// ops or about 1 MiB). The client checks that ops come in increasing order
// within the range. It receives and decodes up to two batches ahead of the
// caller's function (the next batch crosses the network while the caller
// applies and fsyncs the previous one); the function still sees every
// batch in order, one call at a time, and a broken stream resumes after
// the last op it accepted. No part of the path allocates per op but the
// protobuf decode of each pb.Op on the client: the source's op log reader
// decodes records in place from 64 KiB chunks and its pb.Ops come from
// slabs. A range below what the source retains answers
// FailedPrecondition with reason OPS_COMPACTED (a file copy is needed); a
// history UUID other than the one expected answers FailedPrecondition,
// HISTORY_MISMATCH; a range past the source's max seqno OutOfRange, an
// invalid one InvalidArgument. Lease calls map seqno's sentinels: a lease
// lost is NotFound, LEASE_LOST; one that exists AlreadyExists,
// LEASE_EXISTS.
//
// Errors carry a google.rpc.ErrorInfo (domain "recoverd.v1") whose reason
// names the recoverd.v1.ErrorReason when a client must tell it from other
// errors of the same code. The mapping is api/rpcerr's, recoverd's one:
// rpcerr.ToStatus maps domain errors to status errors on the server;
// rpcerr.FromStatus turns a peer's status back into a *rpcerr.RemoteError
// that wraps the matching sentinel (seqno.ErrCompacted, seqno.ErrLeaseLost,
// ErrPinNotFound, ...), so callers use errors.Is across the network.
//
// # Bandwidth
//
// Throttle is one token bucket for the node (golang.org/x/time/rate), in
// bytes per second of wire bytes, shared by peer and snapshot transfers,
// sending and receiving. The bucket holds 100ms of the rate (32 KiB to
// 4 MiB), so it smooths bursts without letting an idle period turn into a
// long burst; larger amounts are taken in pieces. Changing the rate wakes
// the waiters, which reserve again at the new rate. WaitN returns the time
// waited, which recovery reports as throttle time.
//
// # gRPC tuning
//
// ServerOptions and DialOptions set static HTTP/2 flow-control windows of
// 4 MiB per stream and 16 MiB per connection. A stream can have at most its
// window in flight, so the window bounds one stream's rate at window/RTT:
// 4 MiB covers 10 Gbit/s up to about 3 ms round trip, and the connection
// window covers four of the files in flight (8 by default; gRPC carries
// them only from a source without data connections). gRPC's default (64 KiB
// grown by BDP estimation up to 16 MiB) gets there only after ramping up,
// per connection; static windows give full speed from the first chunk and
// a known memory bound (16 MiB buffered per connection at most). Measured
// through a proxy adding a 20ms round trip, one file at a time:
// static 4 MiB 99 MB/s, gRPC defaults 89 MB/s, static 1 MiB 41 MB/s; on
// loopback all are equal (CPU bound). Messages are bounded to 16 MiB both
// ways (a 4 MiB chunk plus framing, an op batch, or one large document),
// which caps what a peer can make this process allocate. Socket read and
// write buffers are 1 MiB so a 1 MiB chunk is about one syscall. Keepalive:
// clients ping a connection silent for 20s and drop it when the ping is
// not answered in 10s (a dead peer is found in about 30s); servers ping
// idle clients every 30s and accept client pings every 10s or more.
//
// # Numbers
//
// go test -run '^$' -bench . -benchtime 20x ./transfer/ on the 2-core
// development machine (shared, so noisy): the whole path of a 16 MiB
// shard (serve, CRC, zstd, gRPC in process, checks, staging writes,
// fsync and Verify) at 260-470 MB/s raw, 130-175 MB/s with zstd on
// text-like data (a quarter of the bytes on the wire); CRC32C 22 GB/s;
// zstd fastest on text 180 MB/s compress, 650 MB/s decompress.
package transfer
