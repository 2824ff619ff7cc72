package remote

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// The conversions of the socket. Unlike pbconv's FromPB functions, those
// the server uses check nothing: what came off the socket goes to the
// engine as it came, and the engine refuses it with the contract's own
// errors (ErrInvalidName, ErrInvalidArgument), as it would in process.

func shardID(id engine.ShardID) *pb.ShardId {
	return &pb.ShardId{Index: id.Index, Shard: uint32(id.Shard)}
}

func shardIDFromPB(m *pb.ShardId) engine.ShardID {
	return engine.ShardID{Index: m.GetIndex(), Shard: int(m.GetShard())}
}

// unknownKind is what an op kind the wire does not know becomes: a kind
// no engine accepts (ErrInvalidArgument).
const unknownKind engine.OpKind = 255

func opToPB(op engine.Op) *pb.Op {
	k := pb.OpKind_OP_KIND_UNSPECIFIED
	switch op.Kind {
	case engine.OpIndex:
		k = pb.OpKind_OP_KIND_INDEX
	case engine.OpDelete:
		k = pb.OpKind_OP_KIND_DELETE
	case engine.OpNoOp:
		k = pb.OpKind_OP_KIND_NOOP
	}
	return &pb.Op{Key: op.Key, Seqno: int64(op.SeqNo), PrimaryTerm: op.PrimaryTerm, Kind: k, Value: op.Value}
}

func opFromPB(m *pb.Op) engine.Op {
	k := unknownKind
	switch m.GetKind() {
	case pb.OpKind_OP_KIND_INDEX:
		k = engine.OpIndex
	case pb.OpKind_OP_KIND_DELETE:
		k = engine.OpDelete
	case pb.OpKind_OP_KIND_NOOP:
		k = engine.OpNoOp
	}
	return engine.Op{Key: m.GetKey(), SeqNo: seqno.SeqNo(m.GetSeqno()), PrimaryTerm: m.GetPrimaryTerm(), Kind: k, Value: m.GetValue()}
}

func opsToPB(ops []engine.Op) []*pb.Op {
	out := make([]*pb.Op, len(ops))
	for i, op := range ops {
		out[i] = opToPB(op)
	}
	return out
}

func opsFromPB(ms []*pb.Op) []engine.Op {
	out := make([]engine.Op, len(ms))
	for i, m := range ms {
		out[i] = opFromPB(m)
	}
	return out
}

func filesFromPB(ms []*pb.FileMeta) []engine.FileMeta {
	out := make([]engine.FileMeta, len(ms))
	for i, m := range ms {
		out[i] = engine.FileMeta{Name: m.GetName(), Length: m.GetLength(), CRC32C: m.GetCrc32C(), WriterUUID: m.GetWriterUuid()}
	}
	return out
}

func commitFromPB(m *pb.CommitData) engine.CommitData {
	return engine.CommitData{
		HistoryUUID: m.GetHistoryUuid(), MaxSeqNo: seqno.SeqNo(m.GetMaxSeqno()), LocalCheckpoint: seqno.SeqNo(m.GetLocalCheckpoint()),
		GlobalCheckpoint: seqno.SeqNo(m.GetGlobalCheckpoint()), MinRetainedSeqNo: seqno.SeqNo(m.GetMinRetainedSeqno()),
		PrimaryTerm: m.GetPrimaryTerm(), WriterVersion: m.GetWriterVersion(), FormatVersion: int(m.GetFormatVersion()),
		MaxTermAboveGlobalCheckpoint: m.GetMaxTermAboveGlobalCheckpoint(),
	}
}

// metadataFromPB is the client's: what the engine answers keeps its order.
func metadataFromPB(m *pb.ShardMetadata) engine.Metadata {
	return engine.Metadata{Generation: m.GetGeneration(), Files: filesFromPB(m.GetFiles()), Commit: commitFromPB(m.GetCommit())}
}

func leaseToPB(l seqno.RetentionLease) *pb.EngineLease {
	return &pb.EngineLease{Id: l.ID, RetainingSeqno: int64(l.RetainingSeqNo), Source: l.Source, Holder: l.Holder, Timestamp: pbconv.Time(l.Timestamp)}
}

func leaseFromPB(m *pb.EngineLease) seqno.RetentionLease {
	return seqno.RetentionLease{ID: m.GetId(), RetainingSeqNo: seqno.SeqNo(m.GetRetainingSeqno()), Source: m.GetSource(),
		Holder: m.GetHolder(), Timestamp: pbconv.TimeFromPB(m.GetTimestamp())}
}

func infoToPB(in engine.ShardInfo) *pb.EngineShardInfo {
	m := &pb.EngineShardInfo{
		Shard: shardID(in.ID), Committed: in.Committed, Metadata: pbconv.Metadata(in.Meta), Seqno: pbconv.Stats(in.Seq),
		PrimaryTerm: in.PrimaryTerm, Retained: pbconv.Range(in.Retained), AvgOpBytes: in.AvgOpBytes,
		LeaseTtl: durationpb.New(in.LeaseTTL),
	}
	for _, l := range in.Leases {
		m.Leases = append(m.Leases, leaseToPB(l))
	}
	return m
}

func infoFromPB(m *pb.EngineShardInfo) engine.ShardInfo {
	in := engine.ShardInfo{
		ID: shardIDFromPB(m.GetShard()), Committed: m.GetCommitted(), Meta: metadataFromPB(m.GetMetadata()),
		Seq: pbconv.StatsFromPB(m.GetSeqno()), PrimaryTerm: m.GetPrimaryTerm(),
		Retained:   seqno.Range{From: seqno.SeqNo(m.GetRetained().GetFrom()), To: seqno.SeqNo(m.GetRetained().GetTo())},
		AvgOpBytes: m.GetAvgOpBytes(), LeaseTTL: m.GetLeaseTtl().AsDuration(),
	}
	for _, l := range m.GetLeases() {
		in.Leases = append(in.Leases, leaseFromPB(l))
	}
	return in
}

func durationToPB(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func commitToPB(c engine.CommitData) *pb.CommitData { return pbconv.CommitData(c) }
