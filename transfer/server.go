package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// ShardProvider looks up a shard open on this node. It returns an error
// wrapping shardstore.ErrNotFound for a shard the node does not hold.
type ShardProvider interface {
	Shard(id shardstore.ShardID) (*shardstore.Shard, error)
}

// PeerServerConfig tunes a PeerServer; the zero value is usable.
type PeerServerConfig struct {
	// ChunkSize is the raw bytes per chunk when the client asks for none
	// (default DefaultChunkSize).
	ChunkSize int
	// DisableCompression never sends zstd, whatever the client accepts.
	DisableCompression bool
	// Throttle is the node's bandwidth budget, applied to bytes sent (file
	// chunks as sent on the wire, and op batches); nil is unlimited.
	Throttle *Throttle
	// PinTTL is the pin lifetime granted when the client asks for none
	// (default 1 minute); MaxPinTTL bounds what a client may ask for
	// (default 10 minutes). A client may not ask for less than
	// min(PinTTL, 1s).
	PinTTL, MaxPinTTL time.Duration
	// MaxPins bounds the pins held at once (default 256);
	// MaxPinsPerHolder bounds those one holder (a node, see identity.go)
	// holds (default MaxPins).
	MaxPins, MaxPinsPerHolder int
	// MaxLeasesPerHolder bounds the live retention leases one holder holds
	// on one shard (default 16): a node runs one recovery of a shard at a
	// time, plus leases of attempts cut short until they expire.
	MaxLeasesPerHolder int
	// OpBatchSize is the ops per batch when the client asks for none
	// (default 1000); OpBatchBytes ends a batch early (default 1 MiB).
	OpBatchSize, OpBatchBytes int
	// WriterVersion and MaxFormat are what this node reports (default
	// shardstore.WriterVersion and shardstore.FormatVersion).
	WriterVersion string
	MaxFormat     int
	Logger        *slog.Logger
}

const (
	defaultPinTTL       = time.Minute
	defaultMaxPinTTL    = 10 * time.Minute
	defaultMaxPins      = 256
	defaultMaxLeases    = 16
	defaultOpBatchSize  = 1000
	defaultOpBatchBytes = 1 << 20
	maxOpBatchSize      = 100000
)

func (c *PeerServerConfig) defaults() {
	if c.ChunkSize <= 0 {
		c.ChunkSize = DefaultChunkSize
	}
	c.ChunkSize = min(max(c.ChunkSize, MinChunkSize), MaxChunkSize)
	if c.PinTTL <= 0 {
		c.PinTTL = defaultPinTTL
	}
	if c.MaxPinTTL <= 0 {
		c.MaxPinTTL = defaultMaxPinTTL
	}
	c.MaxPinTTL = max(c.MaxPinTTL, c.PinTTL)
	if c.MaxPins <= 0 {
		c.MaxPins = defaultMaxPins
	}
	if c.MaxPinsPerHolder <= 0 || c.MaxPinsPerHolder > c.MaxPins {
		c.MaxPinsPerHolder = c.MaxPins
	}
	if c.MaxLeasesPerHolder <= 0 {
		c.MaxLeasesPerHolder = defaultMaxLeases
	}
	if c.OpBatchSize <= 0 {
		c.OpBatchSize = defaultOpBatchSize
	}
	if c.OpBatchBytes <= 0 {
		c.OpBatchBytes = defaultOpBatchBytes
	}
	if c.WriterVersion == "" {
		c.WriterVersion = shardstore.WriterVersion
	}
	if c.MaxFormat <= 0 {
		c.MaxFormat = shardstore.FormatVersion
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// PeerServerStats are the counters of a PeerServer since it started.
type PeerServerStats struct {
	// FileStreams counts FetchFile streams that sent at least one chunk.
	FileStreams int64
	// Chunks counts file chunks sent; CompressedChunks those sent as zstd;
	// CompressionTries the chunks compression was tried on.
	Chunks, CompressedChunks, CompressionTries int64
	// FileBytes is the raw file bytes sent; FileWireBytes the chunk
	// payload bytes as they went on the wire (compressed or not).
	FileBytes, FileWireBytes int64
	// Ops and OpBatches sent; OpWireBytes is their encoded size.
	Ops, OpBatches, OpWireBytes int64
	// ThrottleWait is the time senders waited for the bandwidth budget.
	ThrottleWait time.Duration
	// Pins held now; PinsExpired released because their holder went
	// silent for their TTL.
	Pins        int
	PinsExpired int64
}

type serverCounters struct {
	fileStreams, chunks, compressedChunks, fileBytes, fileWireBytes atomic.Int64
	compressionTries                                                atomic.Int64
	ops, opBatches, opWireBytes, throttleWait, pinsExpired          atomic.Int64
}

// PeerServer implements PeerService over the shards a ShardProvider holds.
// Create it with NewPeerServer and Close it after the gRPC server stopped.
type PeerServer struct {
	pb.UnimplementedPeerServiceServer

	shards ShardProvider
	cfg    PeerServerConfig
	log    *slog.Logger
	c      serverCounters

	mu     sync.Mutex
	pins   map[string]*pin
	closed bool
}

// pin is one CommitRef held for a remote client.
type pin struct {
	id      string
	shard   shardstore.ShardID
	holder  string // the label the client gave, for logs
	owner   string // the authenticated caller that took it (PeerIdentity)
	ref     *shardstore.CommitRef
	ttl     time.Duration
	expires time.Time   // valid while streams == 0
	streams int         // FetchFile streams reading under the pin
	timer   *time.Timer // fires expire; only expire re-arms it
	gone    bool        // removed from the map; ref released when streams reach 0
	// incompressible counts the files of this pin whose first chunk did not
	// compress: past incompressibleFiles, the pin's other files are sent
	// raw without trying (a shard of many small files would otherwise pay a
	// compression attempt per file).
	incompressible atomic.Int32
}

const incompressibleFiles = 3

// NewPeerServer returns a PeerServer serving the shards of p.
func NewPeerServer(p ShardProvider, cfg PeerServerConfig) *PeerServer {
	cfg.defaults()
	return &PeerServer{shards: p, cfg: cfg, log: cfg.Logger, pins: map[string]*pin{}}
}

// Stats returns the server's counters.
func (s *PeerServer) Stats() PeerServerStats {
	s.mu.Lock()
	n := len(s.pins)
	s.mu.Unlock()
	return PeerServerStats{
		FileStreams: s.c.fileStreams.Load(), Chunks: s.c.chunks.Load(), CompressedChunks: s.c.compressedChunks.Load(),
		FileBytes: s.c.fileBytes.Load(), FileWireBytes: s.c.fileWireBytes.Load(),
		Ops: s.c.ops.Load(), OpBatches: s.c.opBatches.Load(), OpWireBytes: s.c.opWireBytes.Load(),
		ThrottleWait: time.Duration(s.c.throttleWait.Load()), Pins: n, PinsExpired: s.c.pinsExpired.Load(),
		CompressionTries: s.c.compressionTries.Load(),
	}
}

// Close releases every pin. Call it once the gRPC server has stopped; a
// pin taken later is refused with Unavailable.
func (s *PeerServer) Close() error {
	s.mu.Lock()
	s.closed = true
	pins := s.pins
	s.pins = map[string]*pin{}
	var release []*pin
	for _, p := range pins {
		p.timer.Stop()
		p.gone = true
		if p.streams == 0 {
			release = append(release, p)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, p := range release {
		errs = append(errs, p.ref.Release())
	}
	return errors.Join(errs...)
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func (s *PeerServer) shard(m *pb.ShardId) (*shardstore.Shard, shardstore.ShardID, error) {
	id, err := pbconv.ShardIDFromPB(m)
	if err != nil {
		return nil, id, invalid("%v", err)
	}
	sh, err := s.shards.Shard(id)
	if err != nil {
		if errors.Is(err, shardstore.ErrNotFound) {
			return nil, id, Errorf(codes.NotFound, pb.ErrorReason_SHARD_NOT_FOUND, "shard %s is not on this node: %v", id, err)
		}
		return nil, id, ToStatus(err)
	}
	return sh, id, nil
}

func (s *PeerServer) info(sh *shardstore.Shard, meta shardstore.Metadata) *pb.ShardInfo {
	st := sh.Stats()
	leases := sh.Leases()
	ttl := leases.TTL()
	live := leases.List()
	pl := make([]*pb.RetentionLease, len(live))
	for i, l := range live {
		pl[i] = pbconv.Lease(l, ttl)
	}
	return &pb.ShardInfo{
		Shard: pbconv.ShardID(sh.ID()), Metadata: pbconv.Metadata(meta), Seqno: pbconv.Stats(st.Seq),
		RetainedOps: pbconv.Range(sh.RetainedOps()), Leases: pl,
		WriterVersion: s.cfg.WriterVersion, MaxFormat: int32(s.cfg.MaxFormat), PrimaryTerm: st.PrimaryTerm,
		AvgOpBytes: sh.AvgOpBytes(),
	}
}

// GetShardMetadata implements PeerService.
func (s *PeerServer) GetShardMetadata(_ context.Context, req *pb.GetShardMetadataRequest) (*pb.GetShardMetadataResponse, error) {
	sh, _, err := s.shard(req.GetShard())
	if err != nil {
		return nil, err
	}
	return &pb.GetShardMetadataResponse{Info: s.info(sh, sh.Metadata())}, nil
}

// GetShardDigest implements PeerService: the digest of the content at
// up_to_seqno (shardstore.DigestAt), from the current commit or, when that
// holds ops past up_to_seqno, from the caller's pinned commit. The shard
// takes writes while it runs; the call's context cancels it.
func (s *PeerServer) GetShardDigest(ctx context.Context, req *pb.GetShardDigestRequest) (*pb.GetShardDigestResponse, error) {
	sh, id, err := s.shard(req.GetShard())
	if err != nil {
		return nil, err
	}
	upTo := seqno.Unassigned
	if req.UpToSeqno != nil {
		if upTo = seqno.SeqNo(req.GetUpToSeqno()); upTo < seqno.NoOpsPerformed {
			return nil, invalid("up_to_seqno %d is below %d", upTo, seqno.NoOpsPerformed)
		}
	}
	var base *shardstore.CommitRef
	if req.PinId != "" {
		p, done, err := s.usePin(ctx, req.PinId, id)
		if err != nil {
			return nil, err
		}
		defer done()
		base = p.ref
	}
	d, at, err := sh.DigestAt(ctx, nil, upTo)
	if errors.Is(err, seqno.ErrCompacted) && base != nil {
		d, at, err = sh.DigestAt(ctx, base, upTo)
	}
	if err != nil {
		return nil, ToStatus(err)
	}
	st := sh.Stats()
	return &pb.GetShardDigestResponse{Digest: d, HistoryUuid: st.HistoryUUID, Seqno: pbconv.Stats(st.Seq), UpToSeqno: proto.Int64(int64(at))}, nil
}

// ---------------------------------------------------------------------------
// Pins

func (p *pin) pb() *pb.Pin {
	return &pb.Pin{Id: p.id, Shard: pbconv.ShardID(p.shard), Generation: p.ref.Metadata().Generation,
		Ttl: durationpb.New(p.ttl), ExpiresAt: pbconv.Time(p.expires)}
}

// PinCommit implements PeerService.
func (s *PeerServer) PinCommit(ctx context.Context, req *pb.PinCommitRequest) (*pb.PinCommitResponse, error) {
	sh, id, err := s.shard(req.GetShard())
	if err != nil {
		return nil, err
	}
	ttl := s.cfg.PinTTL
	if req.Ttl != nil {
		if err := req.Ttl.CheckValid(); err != nil || req.Ttl.AsDuration() < 0 {
			return nil, invalid("pin ttl %v is not a valid duration", req.Ttl)
		}
		if d := req.Ttl.AsDuration(); d > 0 {
			ttl = min(max(d, min(s.cfg.PinTTL, time.Second)), s.cfg.MaxPinTTL)
		}
	}
	if len(req.Holder) > shardstore.MaxNameLen {
		return nil, invalid("pin holder is %d bytes long, at most %d allowed", len(req.Holder), shardstore.MaxNameLen)
	}
	if req.PinId != "" {
		if err := shardstore.ValidateName(req.PinId); err != nil {
			return nil, invalid("pin id: %v", err)
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, status.Error(codes.Unavailable, "peer server is shutting down; retry on another node or later")
	}
	owner := PeerIdentity(ctx)
	if p := s.pins[req.PinId]; req.PinId != "" && p != nil {
		// Asked again (an answer lost, a client restarted): the same pin.
		if p.shard != id || p.holder != req.Holder || p.owner != owner {
			s.mu.Unlock()
			return nil, status.Errorf(codes.AlreadyExists, "pin id %q is taken by another holder or shard; choose another id", req.PinId)
		}
		p.expires = time.Now().Add(p.ttl)
		resp := &pb.PinCommitResponse{Pin: p.pb()}
		s.mu.Unlock()
		resp.Info = s.info(sh, p.ref.Metadata())
		return resp, nil
	}
	if len(s.pins) >= s.cfg.MaxPins {
		s.mu.Unlock()
		return nil, Errorf(codes.ResourceExhausted, pb.ErrorReason_TOO_MANY_PINS,
			"this node holds %d commit pins, its limit; retry later", s.cfg.MaxPins)
	}
	if n := s.pinsOfLocked(owner); n >= s.cfg.MaxPinsPerHolder {
		s.mu.Unlock()
		return nil, Errorf(codes.ResourceExhausted, pb.ErrorReason_TOO_MANY_PINS,
			"%s holds %d commit pins on this node, the most one holder may; release one or retry later", holderName(owner), n)
	}
	ref, err := sh.AcquireCommit()
	if err != nil {
		s.mu.Unlock()
		return nil, ToStatus(err)
	}
	p := &pin{id: req.PinId, shard: id, holder: req.Holder, owner: owner, ref: ref, ttl: ttl, expires: time.Now().Add(ttl)}
	if p.id == "" {
		p.id = uuid.NewString()
	}
	p.timer = time.AfterFunc(ttl, func() { s.expire(p) })
	s.pins[p.id] = p
	resp := &pb.PinCommitResponse{Pin: p.pb()}
	s.mu.Unlock()
	resp.Info = s.info(sh, ref.Metadata())
	s.log.Debug("commit pinned", "pin", p.id, "shard", id.String(), "generation", ref.Metadata().Generation, "holder", p.holder, "owner", owner, "ttl", ttl)
	return resp, nil
}

// pinsOfLocked counts the pins owner holds.
func (s *PeerServer) pinsOfLocked(owner string) int {
	n := 0
	for _, p := range s.pins {
		if p.owner == owner {
			n++
		}
	}
	return n
}

// notOwner refuses a call on a pin another holder took.
func notOwner(p *pin, caller string) error {
	return status.Errorf(codes.PermissionDenied, "commit pin %s is held by %s, not %s: only the holder that took it may renew, release or read under it",
		p.id, holderName(p.owner), holderName(caller))
}

// expire runs when a pin's timer fires: it releases the pin if it is idle
// past its TTL, or re-arms the timer.
func (s *PeerServer) expire(p *pin) {
	s.mu.Lock()
	if p.gone || s.pins[p.id] != p {
		s.mu.Unlock()
		return
	}
	if p.streams > 0 {
		p.timer.Reset(p.ttl) // checked again later; the last stream sets expires
		s.mu.Unlock()
		return
	}
	if d := time.Until(p.expires); d > 0 {
		p.timer.Reset(d)
		s.mu.Unlock()
		return
	}
	delete(s.pins, p.id)
	p.gone = true
	s.mu.Unlock()
	s.c.pinsExpired.Add(1)
	s.log.Info("commit pin expired: its holder went silent", "pin", p.id, "shard", p.shard.String(), "holder", p.holder, "ttl", p.ttl)
	if err := p.ref.Release(); err != nil {
		s.log.Warn("release expired pin", "pin", p.id, "err", err)
	}
}

func pinNotFound(id string) error {
	return Errorf(codes.NotFound, pb.ErrorReason_PIN_NOT_FOUND,
		"commit pin %q is unknown or expired (idle for its TTL, or released): pin the commit again and re-plan", id)
}

// RenewPin implements PeerService.
func (s *PeerServer) RenewPin(ctx context.Context, req *pb.RenewPinRequest) (*pb.RenewPinResponse, error) {
	if req.PinId == "" {
		return nil, invalid("pin_id is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pins[req.PinId]
	if p == nil {
		return nil, pinNotFound(req.PinId)
	}
	if caller := PeerIdentity(ctx); p.owner != caller {
		return nil, notOwner(p, caller)
	}
	p.expires = time.Now().Add(p.ttl)
	return &pb.RenewPinResponse{Pin: p.pb()}, nil
}

// ReleasePin implements PeerService.
func (s *PeerServer) ReleasePin(ctx context.Context, req *pb.ReleasePinRequest) (*pb.ReleasePinResponse, error) {
	if req.PinId == "" {
		return nil, invalid("pin_id is required")
	}
	s.mu.Lock()
	p := s.pins[req.PinId]
	if caller := PeerIdentity(ctx); p != nil && p.owner != caller {
		s.mu.Unlock()
		return nil, notOwner(p, caller)
	}
	release := false
	if p != nil {
		delete(s.pins, p.id)
		p.gone = true
		p.timer.Stop()
		release = p.streams == 0
	}
	s.mu.Unlock()
	if release {
		if err := p.ref.Release(); err != nil {
			s.log.Warn("release pin", "pin", p.id, "err", err)
		}
	}
	return &pb.ReleasePinResponse{}, nil
}

// usePin registers a stream reading under a pin; done must be called when
// the stream ends.
func (s *PeerServer) usePin(ctx context.Context, pinID string, shard shardstore.ShardID) (*pin, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pins[pinID]
	if p == nil {
		return nil, nil, pinNotFound(pinID)
	}
	if caller := PeerIdentity(ctx); p.owner != caller {
		return nil, nil, notOwner(p, caller)
	}
	if p.shard != shard {
		return nil, nil, invalid("commit pin %q holds shard %s, not %s", pinID, p.shard, shard)
	}
	p.streams++
	return p, func() {
		s.mu.Lock()
		p.streams--
		p.expires = time.Now().Add(p.ttl)
		release := p.gone && p.streams == 0
		s.mu.Unlock()
		if release {
			if err := p.ref.Release(); err != nil {
				s.log.Warn("release pin", "pin", p.id, "err", err)
			}
		}
	}, nil
}

// ---------------------------------------------------------------------------
// Files

// FetchFile implements PeerService.
func (s *PeerServer) FetchFile(req *pb.FetchFileRequest, stream pb.PeerService_FetchFileServer) error {
	id, err := pbconv.ShardIDFromPB(req.GetShard())
	if err != nil {
		return invalid("%v", err)
	}
	if req.PinId == "" {
		return invalid("pin_id is required: pin the commit with PinCommit first")
	}
	if err := shardstore.ValidateName(req.Name); err != nil {
		return invalid("file name: %v", err)
	}
	p, done, err := s.usePin(stream.Context(), req.PinId, id)
	if err != nil {
		return err
	}
	defer done()
	meta := p.ref.Metadata()
	if _, ok := meta.Lookup(req.Name); !ok {
		return Errorf(codes.NotFound, pb.ErrorReason_FILE_NOT_FOUND, "file %s is not in commit %d of shard %s (pin %s)",
			req.Name, meta.Generation, id, p.id)
	}
	f, fm, err := p.ref.Open(req.Name)
	if err != nil {
		return ToStatus(err)
	}
	defer f.Close()
	if req.Offset < 0 || req.Offset > fm.Length {
		return status.Errorf(codes.OutOfRange, "offset %d is outside file %s of %d bytes", req.Offset, fm.Name, fm.Length)
	}
	end := fm.Length
	if req.Length < 0 || req.Length > fm.Length-req.Offset {
		return status.Errorf(codes.OutOfRange, "length %d from offset %d runs past the end of file %s (%d bytes)",
			req.Length, req.Offset, fm.Name, fm.Length)
	}
	if req.Length > 0 {
		end = req.Offset + req.Length
	}
	chunk := s.cfg.ChunkSize
	if req.ChunkSize > 0 {
		chunk = min(max(int(req.ChunkSize), MinChunkSize), MaxChunkSize)
	}
	zstdOK := !s.cfg.DisableCompression && req.Compression == pb.Compression_COMPRESSION_ZSTD &&
		p.incompressible.Load() < incompressibleFiles
	return s.sendFile(stream.Context(), stream, f, fm.Name, req.Offset, end, chunk, zstdOK, func() { p.incompressible.Add(1) })
}

// chunkSender is the part of the FetchFile server stream sendFile uses.
type chunkSender interface {
	Send(*pb.FileChunk) error
}

// throttledMessageBytes bounds a chunk or an op batch while the node's
// bandwidth budget is set: the sender waits for the budget before each
// message and the receiver sees nothing meanwhile, so a message must pass
// in a fraction of a second of the budget. Otherwise a throttled source
// serving a few streams falls silent for longer than the target's idle
// deadline between two messages, and every stream is cut and resumed at
// the same offset, forever (seen with 1 MiB chunks, three files and a
// 2 MB/s budget against a 1s deadline; with the defaults, from about
// 200 KB/s down). An eighth of a second of the budget keeps eight streams
// delivering at least every second.
func (s *PeerServer) throttledMessageBytes(want int) int {
	if r := s.cfg.Throttle.Rate(); r > 0 {
		return min(want, int(max(r/8, MinChunkSize)))
	}
	return want
}

// sendFile sends [off, end) of r in chunks of chunkSize raw bytes (fewer
// while the node's budget is low: throttledMessageBytes).
// sendFile streams [off, end) of a file; noGain is called when the data
// turned out not to compress.
func (s *PeerServer) sendFile(ctx context.Context, out chunkSender, r io.ReaderAt, name string, off, end int64, chunkSize int, zstdOK bool, noGain func()) error {
	var buf []byte
	sent := false
	for off < end {
		n := int(min(int64(s.throttledMessageBytes(chunkSize)), end-off))
		if cap(buf) < n {
			buf = make([]byte, chunkSize)
		}
		raw := buf[:n]
		if _, err := r.ReadAt(raw, off); err != nil {
			return status.Errorf(codes.Internal, "read %s at %d: %v", name, off, err)
		}
		ch := &pb.FileChunk{Offset: off, Crc32C: CRC32C(raw), UncompressedLength: uint32(n), Compression: pb.Compression_COMPRESSION_NONE}
		if zstdOK && n >= minCompressLen {
			s.c.compressionTries.Add(1)
			if c := compressChunk(raw); c != nil {
				ch.Data, ch.Compression = c, pb.Compression_COMPRESSION_ZSTD
			} else {
				zstdOK = false // does not compress: stop trying for this stream
				noGain()
			}
		}
		if ch.Data == nil {
			ch.Data = raw
			buf = nil // gRPC may still hold raw after Send returns
		}
		wait, err := s.cfg.Throttle.WaitN(ctx, len(ch.Data))
		s.c.throttleWait.Add(int64(wait))
		if err != nil {
			return status.FromContextError(err).Err()
		}
		if err := out.Send(ch); err != nil {
			return err
		}
		if !sent {
			sent = true
			s.c.fileStreams.Add(1)
		}
		s.c.chunks.Add(1)
		if ch.Compression == pb.Compression_COMPRESSION_ZSTD {
			s.c.compressedChunks.Add(1)
		}
		s.c.fileBytes.Add(int64(n))
		s.c.fileWireBytes.Add(int64(len(ch.Data)))
		off += int64(n)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Ops

// FetchOps implements PeerService.
func (s *PeerServer) FetchOps(req *pb.FetchOpsRequest, stream pb.PeerService_FetchOpsServer) error {
	sh, id, err := s.shard(req.GetShard())
	if err != nil {
		return err
	}
	r, err := pbconv.RangeFromPB(req.GetRange())
	if err != nil {
		return invalid("ops range: %v", err)
	}
	if req.ExpectedHistoryUuid == "" {
		return invalid("expected_history_uuid is required: ops are only exchanged within one history")
	}
	batch := s.cfg.OpBatchSize
	if req.BatchSize > 0 {
		batch = min(int(req.BatchSize), maxOpBatchSize)
	}
	return s.sendOps(stream.Context(), stream, sh, id, r, req.ExpectedHistoryUuid, batch)
}

// opSender is the part of the FetchOps server stream sendOps uses.
type opSender interface {
	Send(*pb.OpBatch) error
}

func (s *PeerServer) sendOps(ctx context.Context, out opSender, sh *shardstore.Shard, id shardstore.ShardID, r seqno.Range, history string, batchSize int) error {
	st := sh.Stats()
	if st.HistoryUUID != history {
		return Errorf(codes.FailedPrecondition, pb.ErrorReason_HISTORY_MISMATCH,
			"shard %s on this node has history %s, the request expects %s: copies of different histories never exchange ops; re-plan (a file copy is needed)",
			id, st.HistoryUUID, history)
	}
	if r.Empty() {
		return nil
	}
	if retained := sh.RetainedOps(); r.From < retained.From {
		return Errorf(codes.FailedPrecondition, pb.ErrorReason_OPS_COMPACTED,
			"ops from %v asked, shard %s retains ops from %v only: a file copy is needed", r.From, id, retained.From)
	}
	if r.To > st.Seq.MaxSeqNo {
		return status.Errorf(codes.OutOfRange, "ops up to %v asked, shard %s has seen ops up to %v only", r.To, id, st.Seq.MaxSeqNo)
	}
	var (
		ops   = make([]*pb.Op, 0, min(batchSize, 1024))
		bytes int
	)
	flush := func() error {
		b := &pb.OpBatch{Ops: ops}
		size := proto.Size(b)
		wait, err := s.cfg.Throttle.WaitN(ctx, size)
		s.c.throttleWait.Add(int64(wait))
		if err != nil {
			return err
		}
		if err := out.Send(b); err != nil {
			return err
		}
		s.c.ops.Add(int64(len(ops)))
		s.c.opBatches.Add(1)
		s.c.opWireBytes.Add(int64(size))
		ops, bytes = make([]*pb.Op, 0, cap(ops)), 0
		return nil
	}
	errSend := errors.New("send")
	var sendErr error
	err := sh.ReadOps(r, func(op shardstore.Op) error {
		ops = append(ops, pbconv.Op(op))
		bytes += len(op.Key) + len(op.Value) + 32
		if len(ops) >= batchSize || bytes >= s.throttledMessageBytes(s.cfg.OpBatchBytes) {
			if sendErr = flush(); sendErr != nil {
				return errSend
			}
		}
		return ctx.Err()
	})
	if errors.Is(err, errSend) {
		if ce := ctx.Err(); ce != nil {
			return status.FromContextError(ce).Err()
		}
		return sendErr
	}
	if err != nil {
		return ToStatus(fmt.Errorf("read ops %v of %s: %w", r, id, err))
	}
	if len(ops) > 0 {
		if err := flush(); err != nil {
			if ce := ctx.Err(); ce != nil {
				return status.FromContextError(ce).Err()
			}
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Leases

func (s *PeerServer) leaseResp(sh *shardstore.Shard, l seqno.RetentionLease) *pb.RetentionLease {
	return pbconv.Lease(l, sh.Leases().TTL())
}

// AcquireLease implements PeerService.
func (s *PeerServer) AcquireLease(ctx context.Context, req *pb.AcquireLeaseRequest) (*pb.AcquireLeaseResponse, error) {
	sh, id, err := s.shard(req.GetShard())
	if err != nil {
		return nil, err
	}
	if err := shardstore.ValidateName(req.LeaseId); err != nil {
		return nil, invalid("lease_id: %v", err)
	}
	if req.RetainingSeqno < 0 {
		return nil, invalid("retaining_seqno %d is negative", req.RetainingSeqno)
	}
	if len(req.Source) > shardstore.MaxNameLen {
		return nil, invalid("lease source is %d bytes long, at most %d allowed", len(req.Source), shardstore.MaxNameLen)
	}
	l, err := sh.Leases().AddHeld(req.LeaseId, seqno.SeqNo(req.RetainingSeqno), req.Source, PeerIdentity(ctx), s.cfg.MaxLeasesPerHolder)
	if err != nil {
		return nil, ToStatus(fmt.Errorf("shard %s: %w", id, err))
	}
	s.log.Debug("retention lease acquired", "shard", id.String(), "lease", l.ID, "retaining", l.RetainingSeqNo, "source", l.Source, "holder", l.Holder)
	return &pb.AcquireLeaseResponse{Lease: s.leaseResp(sh, l)}, nil
}

// RenewLease implements PeerService.
func (s *PeerServer) RenewLease(ctx context.Context, req *pb.RenewLeaseRequest) (*pb.RenewLeaseResponse, error) {
	sh, id, err := s.shard(req.GetShard())
	if err != nil {
		return nil, err
	}
	if err := shardstore.ValidateName(req.LeaseId); err != nil {
		return nil, invalid("lease_id: %v", err)
	}
	cur, held := findLease(sh.Leases().List(), req.LeaseId)
	retaining := cur.RetainingSeqNo
	if req.RetainingSeqno != nil {
		retaining = seqno.SeqNo(*req.RetainingSeqno)
		if retaining < 0 {
			return nil, invalid("retaining_seqno %d is negative", retaining)
		}
		if held && retaining < cur.RetainingSeqNo {
			return nil, invalid("retention lease %s retains from %v; a renewal may raise that, not lower it to %v",
				req.LeaseId, cur.RetainingSeqNo, retaining)
		}
	}
	// An unknown or expired lease answers ErrLeaseLost (and an expired one
	// is dropped durably), whatever the seqno.
	l, err := sh.Leases().RenewHeld(req.LeaseId, PeerIdentity(ctx), retaining)
	if err != nil {
		return nil, ToStatus(fmt.Errorf("shard %s: %w", id, err))
	}
	return &pb.RenewLeaseResponse{Lease: s.leaseResp(sh, l)}, nil
}

func findLease(ls []seqno.RetentionLease, id string) (seqno.RetentionLease, bool) {
	for _, l := range ls {
		if l.ID == id {
			return l, true
		}
	}
	return seqno.RetentionLease{}, false
}

// ReleaseLease implements PeerService.
func (s *PeerServer) ReleaseLease(ctx context.Context, req *pb.ReleaseLeaseRequest) (*pb.ReleaseLeaseResponse, error) {
	sh, id, err := s.shard(req.GetShard())
	if err != nil {
		return nil, err
	}
	if err := shardstore.ValidateName(req.LeaseId); err != nil {
		return nil, invalid("lease_id: %v", err)
	}
	if err := sh.Leases().RemoveHeld(req.LeaseId, PeerIdentity(ctx)); err != nil {
		return nil, ToStatus(fmt.Errorf("shard %s: release lease %s: %w", id, req.LeaseId, err))
	}
	return &pb.ReleaseLeaseResponse{}, nil
}
