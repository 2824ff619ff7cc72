package pbconv

import (
	"strings"
	"testing"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

func TestRoundTrip(t *testing.T) {
	meta := shardstore.Metadata{Generation: 7, Files: []shardstore.FileMeta{
		{Name: "seg_1", Length: 10, CRC32C: 0xdeadbeef, WriterUUID: "w1"}, {Name: "seg_2", Length: 20, CRC32C: 1},
	}, Commit: shardstore.CommitData{HistoryUUID: "h", MaxSeqNo: 9, LocalCheckpoint: 9, GlobalCheckpoint: 5,
		MinRetainedSeqNo: 3, PrimaryTerm: 2, MaxTermAboveGlobalCheckpoint: 1, WriterVersion: "0.1.0", FormatVersion: 1}}
	m := Metadata(meta)
	m.Files[0], m.Files[1] = m.Files[1], m.Files[0] // any order on the wire
	back, err := MetadataFromPB(m)
	if err != nil {
		t.Fatal(err)
	}
	if back.Generation != meta.Generation || back.Commit != meta.Commit || back.Files[0] != meta.Files[0] || back.Files[1] != meta.Files[1] {
		t.Fatalf("round trip %+v", back)
	}
	op := shardstore.Op{Key: "k", SeqNo: 4, PrimaryTerm: 2, Kind: shardstore.OpDelete}
	if got, err := OpFromPB(Op(op)); err != nil || got.Key != op.Key || got.SeqNo != op.SeqNo || got.Kind != op.Kind || got.PrimaryTerm != 2 {
		t.Fatalf("op %+v %v", got, err)
	}
	noop := shardstore.Op{SeqNo: 5, PrimaryTerm: 3, Kind: shardstore.OpNoOp}
	if got, err := OpFromPB(Op(noop)); err != nil || got.Key != "" || got.SeqNo != 5 || got.Kind != shardstore.OpNoOp || got.PrimaryTerm != 3 {
		t.Fatalf("no-op %+v %v", got, err)
	}
	for _, bad := range []*pb.Op{{Seqno: 1, Kind: pb.OpKind_OP_KIND_INDEX}, {Key: "k", Seqno: 1, Kind: pb.OpKind_OP_KIND_NOOP}} {
		if _, err := OpFromPB(bad); err == nil {
			t.Errorf("op %v accepted", bad)
		}
	}
	ts := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	l, ttl, err := LeaseFromPB(Lease(seqno.RetentionLease{ID: "a", RetainingSeqNo: 3, Source: "s", Timestamp: ts}, time.Minute))
	if err != nil || l.ID != "a" || l.RetainingSeqNo != 3 || !l.Timestamp.Equal(ts) || ttl != time.Minute {
		t.Fatalf("lease %+v %v %v", l, ttl, err)
	}
	if id, err := ShardIDFromPB(ShardID(shardstore.ShardID{Index: "i", Shard: 4})); err != nil || id.Index != "i" || id.Shard != 4 {
		t.Fatalf("shard id %v %v", id, err)
	}
}

func TestRejects(t *testing.T) {
	for name, err := range map[string]error{
		"nil shard":     second(ShardIDFromPB(nil)),
		"bad index":     second(ShardIDFromPB(&pb.ShardId{Index: "a/b"})),
		"huge shard":    second(ShardIDFromPB(&pb.ShardId{Index: "a", Shard: 1 << 30})),
		"bad file":      second(FileMetaFromPB(&pb.FileMeta{Name: ".."})),
		"negative len":  second(FileMetaFromPB(&pb.FileMeta{Name: "a", Length: -1})),
		"dup file":      second(FilesFromPB([]*pb.FileMeta{{Name: "a"}, {Name: "a"}})),
		"inverted":      second(RangeFromPB(&pb.SeqNoRange{From: 5, To: 2})),
		"negative from": second(RangeFromPB(&pb.SeqNoRange{From: -1, To: 2})),
		"nil range":     second(RangeFromPB(nil)),
		"cp above max":  second(CommitDataFromPB(&pb.CommitData{MaxSeqno: 1, LocalCheckpoint: 2})),
		"no kind":       second(OpFromPB(&pb.Op{Key: "k"})),
		"no key":        second(OpFromPB(&pb.Op{Kind: pb.OpKind_OP_KIND_INDEX})),
	} {
		if err == nil || strings.TrimSpace(err.Error()) == "" {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := RangeFromPB(&pb.SeqNoRange{From: 5, To: 4}); err != nil {
		t.Errorf("empty range refused: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }
