// Package pbconv converts between the wire messages of api/recoverdv1 and
// the domain types of shardstore, seqno and snapshot.
//
// ToPB functions never fail. FromPB functions check what came off the wire
// (names, seqno ranges, lengths, enum values) and return an error that names
// the offending field; a server answers it with InvalidArgument. A nil
// message where one is required is an error, never a zero value taken as
// meant.
package pbconv

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// ShardID converts a shard id to the wire.
func ShardID(id shardstore.ShardID) *pb.ShardId {
	return &pb.ShardId{Index: id.Index, Shard: uint32(id.Shard)}
}

// ShardIDFromPB converts and validates a shard id from the wire.
func ShardIDFromPB(m *pb.ShardId) (shardstore.ShardID, error) {
	if m == nil {
		return shardstore.ShardID{}, errors.New("shard is required")
	}
	if m.Shard > 1<<20 {
		return shardstore.ShardID{}, fmt.Errorf("shard number %d is out of range (at most %d)", m.Shard, 1<<20)
	}
	id := shardstore.ShardID{Index: m.Index, Shard: int(m.Shard)}
	if err := id.Validate(); err != nil {
		return shardstore.ShardID{}, fmt.Errorf("shard %q: %w", m.Index, err)
	}
	return id, nil
}

// FileMeta converts a file's metadata to the wire.
func FileMeta(f shardstore.FileMeta) *pb.FileMeta {
	return &pb.FileMeta{Name: f.Name, Length: f.Length, Crc32C: f.CRC32C, WriterUuid: f.WriterUUID}
}

// FileMetaFromPB converts and validates a file's metadata.
func FileMetaFromPB(m *pb.FileMeta) (shardstore.FileMeta, error) {
	if m == nil {
		return shardstore.FileMeta{}, errors.New("file metadata is required")
	}
	if err := shardstore.ValidateName(m.Name); err != nil {
		return shardstore.FileMeta{}, fmt.Errorf("file name: %w", err)
	}
	if m.Length < 0 {
		return shardstore.FileMeta{}, fmt.Errorf("file %s has negative length %d", m.Name, m.Length)
	}
	return shardstore.FileMeta{Name: m.Name, Length: m.Length, CRC32C: m.Crc32C, WriterUUID: m.WriterUuid}, nil
}

// Files converts a file list to the wire.
func Files(fs []shardstore.FileMeta) []*pb.FileMeta {
	out := make([]*pb.FileMeta, len(fs))
	for i, f := range fs {
		out[i] = FileMeta(f)
	}
	return out
}

// FilesFromPB converts and validates a file list; a name listed twice is an
// error.
func FilesFromPB(ms []*pb.FileMeta) ([]shardstore.FileMeta, error) {
	out := make([]shardstore.FileMeta, len(ms))
	seen := make(map[string]bool, len(ms))
	for i, m := range ms {
		f, err := FileMetaFromPB(m)
		if err != nil {
			return nil, fmt.Errorf("file %d: %w", i, err)
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("file %s is listed twice", f.Name)
		}
		seen[f.Name] = true
		out[i] = f
	}
	return out, nil
}

// CommitData converts a commit's user data to the wire.
func CommitData(c shardstore.CommitData) *pb.CommitData {
	return &pb.CommitData{
		HistoryUuid: c.HistoryUUID, MaxSeqno: int64(c.MaxSeqNo), LocalCheckpoint: int64(c.LocalCheckpoint),
		GlobalCheckpoint: int64(c.GlobalCheckpoint), MinRetainedSeqno: int64(c.MinRetainedSeqNo),
		PrimaryTerm: c.PrimaryTerm, WriterVersion: c.WriterVersion, FormatVersion: int32(c.FormatVersion),
		MaxTermAboveGlobalCheckpoint: c.MaxTermAboveGlobalCheckpoint,
	}
}

// CommitDataFromPB converts a commit's user data and checks its seqnos.
func CommitDataFromPB(m *pb.CommitData) (shardstore.CommitData, error) {
	if m == nil {
		return shardstore.CommitData{}, errors.New("commit data is required")
	}
	c := shardstore.CommitData{
		HistoryUUID: m.HistoryUuid, MaxSeqNo: seqno.SeqNo(m.MaxSeqno), LocalCheckpoint: seqno.SeqNo(m.LocalCheckpoint),
		GlobalCheckpoint: seqno.SeqNo(m.GlobalCheckpoint), MinRetainedSeqNo: seqno.SeqNo(m.MinRetainedSeqno),
		PrimaryTerm: m.PrimaryTerm, WriterVersion: m.WriterVersion, FormatVersion: int(m.FormatVersion),
		MaxTermAboveGlobalCheckpoint: m.MaxTermAboveGlobalCheckpoint,
	}
	for name, s := range map[string]seqno.SeqNo{"max_seqno": c.MaxSeqNo, "local_checkpoint": c.LocalCheckpoint, "global_checkpoint": c.GlobalCheckpoint} {
		if s < seqno.Unassigned {
			return shardstore.CommitData{}, fmt.Errorf("commit %s %d is below %d", name, int64(s), int64(seqno.Unassigned))
		}
	}
	if c.LocalCheckpoint > c.MaxSeqNo {
		return shardstore.CommitData{}, fmt.Errorf("commit local checkpoint %v is above its max seqno %v", c.LocalCheckpoint, c.MaxSeqNo)
	}
	return c, nil
}

// Metadata converts a commit's metadata to the wire.
func Metadata(m shardstore.Metadata) *pb.ShardMetadata {
	return &pb.ShardMetadata{Generation: m.Generation, Files: Files(m.Files), Commit: CommitData(m.Commit)}
}

// MetadataFromPB converts and validates a commit's metadata; files come out
// sorted by name, as shardstore.Metadata requires.
func MetadataFromPB(m *pb.ShardMetadata) (shardstore.Metadata, error) {
	if m == nil {
		return shardstore.Metadata{}, errors.New("shard metadata is required")
	}
	files, err := FilesFromPB(m.Files)
	if err != nil {
		return shardstore.Metadata{}, err
	}
	sortFiles(files)
	c, err := CommitDataFromPB(m.Commit)
	if err != nil {
		return shardstore.Metadata{}, err
	}
	return shardstore.Metadata{Generation: m.Generation, Files: files, Commit: c}, nil
}

func sortFiles(fs []shardstore.FileMeta) {
	slices.SortFunc(fs, func(a, b shardstore.FileMeta) int { return strings.Compare(a.Name, b.Name) })
}

// Range converts a seqno range to the wire.
func Range(r seqno.Range) *pb.SeqNoRange {
	return &pb.SeqNoRange{From: int64(r.From), To: int64(r.To)}
}

// RangeFromPB converts and validates a seqno range (seqno.Range.Validate).
func RangeFromPB(m *pb.SeqNoRange) (seqno.Range, error) {
	if m == nil {
		return seqno.Range{}, errors.New("seqno range is required")
	}
	r := seqno.Range{From: seqno.SeqNo(m.From), To: seqno.SeqNo(m.To)}
	if err := r.Validate(); err != nil {
		return seqno.Range{}, err
	}
	return r, nil
}

// Stats converts seqno statistics to the wire.
func Stats(s seqno.Stats) *pb.SeqNoStats {
	return &pb.SeqNoStats{MaxSeqno: int64(s.MaxSeqNo), LocalCheckpoint: int64(s.LocalCheckpoint), GlobalCheckpoint: int64(s.GlobalCheckpoint)}
}

// StatsFromPB converts seqno statistics; nil is the statistics of a shard
// with no ops.
func StatsFromPB(m *pb.SeqNoStats) seqno.Stats {
	if m == nil {
		return seqno.Stats{MaxSeqNo: seqno.NoOpsPerformed, LocalCheckpoint: seqno.NoOpsPerformed, GlobalCheckpoint: seqno.NoOpsPerformed}
	}
	return seqno.Stats{MaxSeqNo: seqno.SeqNo(m.MaxSeqno), LocalCheckpoint: seqno.SeqNo(m.LocalCheckpoint), GlobalCheckpoint: seqno.SeqNo(m.GlobalCheckpoint)}
}

// Lease converts a retention lease to the wire; ttl is the lease set's TTL
// (0 leaves ttl and expires_at unset).
func Lease(l seqno.RetentionLease, ttl time.Duration) *pb.RetentionLease {
	m := &pb.RetentionLease{Id: l.ID, RetainingSeqno: int64(l.RetainingSeqNo), Source: l.Source, Timestamp: Time(l.Timestamp)}
	if l.TTL > 0 { // a lease of its own lifetime (a copy's)
		ttl = l.TTL
	}
	if ttl > 0 {
		m.Ttl = durationpb.New(ttl)
		m.ExpiresAt = Time(l.Timestamp.Add(ttl))
	}
	return m
}

// LeaseFromPB converts a retention lease and returns its TTL (0 when the
// message carries none).
func LeaseFromPB(m *pb.RetentionLease) (seqno.RetentionLease, time.Duration, error) {
	if m == nil {
		return seqno.RetentionLease{}, 0, errors.New("retention lease is required")
	}
	l := seqno.RetentionLease{ID: m.Id, RetainingSeqNo: seqno.SeqNo(m.RetainingSeqno), Source: m.Source, Timestamp: TimeFromPB(m.Timestamp)}
	return l, m.GetTtl().AsDuration(), nil
}

// OpKind converts an op kind to the wire.
func OpKind(k shardstore.OpKind) pb.OpKind {
	switch k {
	case shardstore.OpDelete:
		return pb.OpKind_OP_KIND_DELETE
	case shardstore.OpNoOp:
		return pb.OpKind_OP_KIND_NOOP
	}
	return pb.OpKind_OP_KIND_INDEX
}

// OpKindFromPB converts an op kind; UNSPECIFIED and unknown values are
// errors.
func OpKindFromPB(k pb.OpKind) (shardstore.OpKind, error) {
	switch k {
	case pb.OpKind_OP_KIND_INDEX:
		return shardstore.OpIndex, nil
	case pb.OpKind_OP_KIND_DELETE:
		return shardstore.OpDelete, nil
	case pb.OpKind_OP_KIND_NOOP:
		return shardstore.OpNoOp, nil
	}
	return 0, fmt.Errorf("op kind %v is not index, delete or no-op", k)
}

// Op converts an op to the wire.
func Op(op shardstore.Op) *pb.Op {
	m := &pb.Op{}
	SetOp(m, &op)
	return m
}

// SetOp fills m, a zero message, with op (for callers that allocate
// messages in slabs).
func SetOp(m *pb.Op, op *shardstore.Op) {
	m.Key, m.Seqno, m.PrimaryTerm, m.Kind, m.Value = op.Key, int64(op.SeqNo), op.PrimaryTerm, OpKind(op.Kind), op.Value
}

// OpFromPB converts an op.
func OpFromPB(m *pb.Op) (shardstore.Op, error) {
	if m == nil {
		return shardstore.Op{}, errors.New("op is required")
	}
	k, err := OpKindFromPB(m.Kind)
	if err != nil {
		return shardstore.Op{}, fmt.Errorf("op %d: %w", m.Seqno, err)
	}
	if noop := k == shardstore.OpNoOp; noop != (m.Key == "") {
		return shardstore.Op{}, fmt.Errorf("op %d is %v with key %q: index and delete ops need a key, no-ops have none", m.Seqno, k, m.Key)
	}
	return shardstore.Op{Key: m.Key, SeqNo: seqno.SeqNo(m.Seqno), PrimaryTerm: m.PrimaryTerm, Kind: k, Value: m.Value}, nil
}

// Ops converts ops to the wire.
func Ops(ops []shardstore.Op) []*pb.Op {
	out := make([]*pb.Op, len(ops))
	for i, op := range ops {
		out[i] = Op(op)
	}
	return out
}

// OpsFromPB converts ops.
func OpsFromPB(ms []*pb.Op) ([]shardstore.Op, error) {
	out := make([]shardstore.Op, len(ms))
	for i, m := range ms {
		op, err := OpFromPB(m)
		if err != nil {
			return nil, err
		}
		out[i] = op
	}
	return out, nil
}

// ShardStats converts a shard's live numbers to the wire.
func ShardStats(s shardstore.Stats) *pb.ShardStats {
	return &pb.ShardStats{
		Shard: ShardID(s.ID), HistoryUuid: s.HistoryUUID, PrimaryTerm: s.PrimaryTerm, Seqno: Stats(s.Seq),
		MinRetainedSeqno: int64(s.MinRetainedSeqNo), Generation: s.Generation, Segments: int64(s.Segments),
		SegmentBytes: s.SegmentBytes, MemtableDocs: int64(s.MemtableDocs), Leases: int64(s.Leases),
		State: pb.ShardState_SHARD_STATE_OPEN,
	}
}

// Time converts a time to the wire; the zero time is nil.
func Time(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// TimeFromPB converts a timestamp; nil is the zero time.
func TimeFromPB(m *timestamppb.Timestamp) time.Time {
	if m == nil {
		return time.Time{}
	}
	return m.AsTime()
}

// RepositoryRequests converts counts of S3 requests by type.
func RepositoryRequests(t snapshot.RequestTally) *pb.RepositoryRequests {
	return &pb.RepositoryRequests{List: t.List, Get: t.Get, Put: t.Put, Head: t.Head, Delete: t.Delete}
}
