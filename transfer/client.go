package transfer

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// ShardInfo is what a source tells about its copy (GetShardMetadata,
// PinCommit): what a planner needs of the source.
type ShardInfo struct {
	Shard engine.ShardID
	// Meta is the current (or pinned) commit.
	Meta engine.Metadata
	// Seq are the live seqno statistics (max seqno includes unflushed ops).
	Seq seqno.Stats
	// Retained is the range of ops the source's op log can serve.
	Retained seqno.Range
	Leases   []Lease
	// WriterVersion and MaxFormat of the source node.
	WriterVersion string
	MaxFormat     int
	// AvgOpBytes is the source's average op size; 0 when unknown.
	AvgOpBytes  int64
	PrimaryTerm uint64
}

// ShardInfoFromPB converts and checks a source's ShardInfo.
func ShardInfoFromPB(m *pb.ShardInfo) (ShardInfo, error) {
	if m == nil {
		return ShardInfo{}, fmt.Errorf("%w: answer without shard info", ErrProtocol)
	}
	id, err := pbconv.ShardIDFromPB(m.Shard)
	if err != nil {
		return ShardInfo{}, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	meta, err := pbconv.MetadataFromPB(m.Metadata)
	if err != nil {
		return ShardInfo{}, fmt.Errorf("%w: shard %s: %v", ErrProtocol, id, err)
	}
	retained, err := pbconv.RangeFromPB(m.RetainedOps)
	if err != nil {
		return ShardInfo{}, fmt.Errorf("%w: shard %s retained ops: %v", ErrProtocol, id, err)
	}
	info := ShardInfo{
		Shard: id, Meta: meta, Seq: pbconv.StatsFromPB(m.Seqno), Retained: retained,
		WriterVersion: m.WriterVersion, MaxFormat: int(m.MaxFormat), AvgOpBytes: m.AvgOpBytes, PrimaryTerm: m.PrimaryTerm,
	}
	for _, l := range m.Leases {
		le, err := leaseFromPB(l)
		if err != nil {
			return ShardInfo{}, err
		}
		info.Leases = append(info.Leases, le)
	}
	return info, nil
}

// GetShardInfo asks a source about its copy of a shard (no pin).
func GetShardInfo(ctx context.Context, c pb.PeerServiceClient, shard engine.ShardID) (ShardInfo, error) {
	resp, err := c.GetShardMetadata(ctx, &pb.GetShardMetadataRequest{Shard: pbconv.ShardID(shard)})
	if err != nil {
		return ShardInfo{}, fmt.Errorf("transfer: shard metadata of %s: %w", shard, rpcerr.FromStatus(err))
	}
	return ShardInfoFromPB(resp.Info)
}

// Digest is a source's digest of its live documents (GetShardDigest).
type Digest struct {
	Digest      string
	HistoryUUID string
	Seq         seqno.Stats
	// UpTo is the seqno the digest covers; seqno.Unassigned from a source
	// that digests only its whole content.
	UpTo seqno.SeqNo
}

// GetShardDigest asks a source for the digest of its content as of upTo
// (seqno.Unassigned: all of it), starting from the commit pinned by pinID
// ("": none) when the source's current commit holds ops past upTo. It is
// a full scan of the source's shard, which goes on taking writes.
// seqno.ErrCompacted when the source no longer holds its content at upTo.
func GetShardDigest(ctx context.Context, c pb.PeerServiceClient, shard engine.ShardID, pinID string, upTo seqno.SeqNo) (Digest, error) {
	req := &pb.GetShardDigestRequest{Shard: pbconv.ShardID(shard), PinId: pinID}
	if upTo != seqno.Unassigned {
		req.UpToSeqno = proto.Int64(int64(upTo))
	}
	resp, err := c.GetShardDigest(ctx, req)
	if err != nil {
		return Digest{}, fmt.Errorf("transfer: digest of %s: %w", shard, rpcerr.FromStatus(err))
	}
	d := Digest{Digest: resp.Digest, HistoryUUID: resp.HistoryUuid, Seq: pbconv.StatsFromPB(resp.Seqno), UpTo: seqno.Unassigned}
	if resp.UpToSeqno != nil {
		d.UpTo = seqno.SeqNo(resp.GetUpToSeqno())
	}
	return d, nil
}
