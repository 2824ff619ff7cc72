package transfer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// ShardProvider is what the peer server needs of the node's engine: its
// version, and its committed shards (engine.Engine is one). Shard is
// called once per peer call (not per file chunk); it answers an error
// wrapping engine.ErrNotFound for a shard the node does not hold.
type ShardProvider interface {
	Version() engine.Version
	Shard(ctx context.Context, id engine.ShardID) (engine.Shard, error)
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
	// (default 10000); OpBatchBytes ends a batch early (default 1 MiB:
	// small ops end a batch by bytes, one fsync per batch on the target).
	OpBatchSize, OpBatchBytes int
	// WriterVersion and MaxFormat are what this node reports (default
	// the engine's Version).
	WriterVersion string
	MaxFormat     int
	Logger        *slog.Logger
}

const (
	defaultPinTTL       = time.Minute
	defaultMaxPinTTL    = 10 * time.Minute
	defaultMaxPins      = 256
	defaultMaxLeases    = 16
	defaultOpBatchSize  = 10000
	defaultOpBatchBytes = 1 << 20
	maxOpBatchSize      = 100000
)

func (c *PeerServerConfig) defaults(v engine.Version) {
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
		c.WriterVersion = v.Writer
	}
	if c.MaxFormat <= 0 {
		c.MaxFormat = v.MaxFormat
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// PeerServerStats are the counters of a PeerServer since it started.
type PeerServerStats struct {
	// FileStreams counts FetchFile streams that sent at least one chunk;
	// Files the files they sent (several small ones go per stream).
	FileStreams, Files int64
	// DataStreams counts FetchFile requests that came on a data
	// connection (dataconn.go) rather than gRPC.
	DataStreams int64
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
	// Pins held now; PeakPins the most held at once since the server
	// started (at most MaxPins: the recoveries served at once);
	// PinsExpired released because their holder went silent for their
	// TTL.
	Pins, PeakPins int
	PinsExpired    int64
}

type serverCounters struct {
	fileStreams, files, chunks, compressedChunks, fileBytes, fileWireBytes atomic.Int64
	dataStreams                                                            atomic.Int64
	compressionTries                                                       atomic.Int64
	ops, opBatches, opWireBytes, throttleWait, pinsExpired                 atomic.Int64
}

// PeerServer implements PeerService over the shards a ShardProvider holds.
// Create it with NewPeerServer and Close it after the gRPC server stopped.
type PeerServer struct {
	pb.UnimplementedPeerServiceServer

	shards ShardProvider
	cfg    PeerServerConfig
	log    *slog.Logger
	c      serverCounters

	mu       sync.Mutex
	pins     map[string]*pin
	peakPins int
	closed   bool
}

// NewPeerServer returns a PeerServer serving the shards of p.
func NewPeerServer(p ShardProvider, cfg PeerServerConfig) *PeerServer {
	cfg.defaults(p.Version())
	return &PeerServer{shards: p, cfg: cfg, log: cfg.Logger, pins: map[string]*pin{}}
}

// Stats returns the server's counters.
func (s *PeerServer) Stats() PeerServerStats {
	s.mu.Lock()
	n, peak := len(s.pins), s.peakPins
	s.mu.Unlock()
	return PeerServerStats{
		FileStreams: s.c.fileStreams.Load(), Files: s.c.files.Load(), Chunks: s.c.chunks.Load(), CompressedChunks: s.c.compressedChunks.Load(),
		FileBytes: s.c.fileBytes.Load(), FileWireBytes: s.c.fileWireBytes.Load(),
		Ops: s.c.ops.Load(), OpBatches: s.c.opBatches.Load(), OpWireBytes: s.c.opWireBytes.Load(),
		ThrottleWait: time.Duration(s.c.throttleWait.Load()), Pins: n, PeakPins: peak, PinsExpired: s.c.pinsExpired.Load(),
		CompressionTries: s.c.compressionTries.Load(), DataStreams: s.c.dataStreams.Load(),
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
		errs = append(errs, p.release())
	}
	return errors.Join(errs...)
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func (s *PeerServer) shard(ctx context.Context, m *pb.ShardId) (engine.Shard, engine.ShardID, error) {
	id, err := pbconv.ShardIDFromPB(m)
	if err != nil {
		return nil, id, invalid("%v", err)
	}
	sh, err := s.shards.Shard(ctx, id)
	if err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			// Also for a shard a recovery is creating here (it wraps
			// ErrNoCommit too): peers are told this node does not hold it.
			return nil, id, rpcerr.Statusf(engine.ErrNotFound, "shard %s is not on this node: %v", id, err)
		}
		return nil, id, rpcerr.ToStatus(err)
	}
	return sh, id, nil
}

// info is the peer API's view of a copy: in is its Info, meta the commit
// to report (the current one, or a pinned one).
func (s *PeerServer) info(in engine.ShardInfo, meta engine.Metadata) *pb.ShardInfo {
	pl := make([]*pb.RetentionLease, len(in.Leases))
	for i, l := range in.Leases {
		pl[i] = pbconv.Lease(l, in.LeaseTTL)
	}
	return &pb.ShardInfo{
		Shard: pbconv.ShardID(in.ID), Metadata: pbconv.Metadata(meta), Seqno: pbconv.Stats(in.Seq),
		RetainedOps: pbconv.Range(in.Retained), Leases: pl,
		WriterVersion: s.cfg.WriterVersion, MaxFormat: int32(s.cfg.MaxFormat), PrimaryTerm: in.PrimaryTerm,
		AvgOpBytes: in.AvgOpBytes,
	}
}

// GetShardMetadata implements PeerService.
func (s *PeerServer) GetShardMetadata(ctx context.Context, req *pb.GetShardMetadataRequest) (*pb.GetShardMetadataResponse, error) {
	sh, _, err := s.shard(ctx, req.GetShard())
	if err != nil {
		return nil, err
	}
	in, err := sh.Info(ctx)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.GetShardMetadataResponse{Info: s.info(in, in.Meta)}, nil
}

// GetShardDigest implements PeerService: the digest of the content at
// up_to_seqno (engine.Reader.DigestAt), from the current commit or, when
// that holds ops past up_to_seqno, from the caller's pinned commit; with
// ops_from, the digest of the ops from it to up_to_seqno (opsDigest). The
// shard takes writes while it runs; the call's context cancels it.
func (s *PeerServer) GetShardDigest(ctx context.Context, req *pb.GetShardDigestRequest) (*pb.GetShardDigestResponse, error) {
	sh, id, err := s.shard(ctx, req.GetShard())
	if err != nil {
		return nil, err
	}
	upTo := seqno.Unassigned
	if req.UpToSeqno != nil {
		if upTo = seqno.SeqNo(req.GetUpToSeqno()); upTo < seqno.NoOpsPerformed {
			return nil, invalid("up_to_seqno %d is below %d", upTo, seqno.NoOpsPerformed)
		}
	}
	if req.OpsFrom != nil {
		return s.opsDigest(ctx, sh, id, req.GetOpsFrom(), upTo)
	}
	var base engine.Pin
	if req.PinId != "" {
		p, done, err := s.usePin(ctx, req.PinId, id)
		if err != nil {
			return nil, err
		}
		defer done()
		base = p.pin
	}
	d, at, err := sh.DigestAt(ctx, nil, upTo)
	if errors.Is(err, seqno.ErrCompacted) && base != nil {
		d, at, err = sh.DigestAt(ctx, base, upTo)
	}
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	in, err := sh.Info(ctx)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.GetShardDigestResponse{Digest: d, HistoryUuid: in.Meta.Commit.HistoryUUID, Seqno: pbconv.Stats(in.Seq), UpToSeqno: proto.Int64(int64(at))}, nil
}
