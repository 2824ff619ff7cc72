package planner

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

const MiB = 1 << 20

func fm(name string, length int64, crc uint32, writer string) shardstore.FileMeta {
	return shardstore.FileMeta{Name: name, Length: length, CRC32C: crc, WriterUUID: writer}
}

func commitAt(history string, max, checkpoint seqno.SeqNo) shardstore.CommitData {
	return shardstore.CommitData{HistoryUUID: history, MaxSeqNo: max, LocalCheckpoint: checkpoint, GlobalCheckpoint: checkpoint,
		WriterVersion: "0.1.0", FormatVersion: 1}
}

// failover is the primary-failover situation: the source (promoted replica)
// and the snapshot (taken on the old primary) hold the same ops in
// different files; the target is a replica too far behind for ops-only.
func failover() Input {
	return Input{
		Source: Source{
			Meta: shardstore.Metadata{
				Files:  []shardstore.FileMeta{fm("seg_r1", 60*MiB, 0x11, "replica-1"), fm("seg_r2", 40*MiB, 0x12, "replica-1")},
				Commit: commitAt("h1", 900, 900),
			},
			MaxSeqNo: 930, Retained: seqno.Range{From: 850, To: 930},
			Version: "0.1.0", MaxFormat: 1,
		},
		Target: Target{
			Meta: shardstore.Metadata{
				Files:  []shardstore.FileMeta{fm("seg_t1", 15*MiB, 0x31, "replica-2")},
				Commit: commitAt("h1", 200, 200),
			},
			Version: "0.1.0", MaxFormat: 1,
		},
		Snapshot: Snapshot{
			State: SnapshotAvailable, ID: "s-42",
			Files:  []shardstore.FileMeta{fm("seg_p1", 70*MiB, 0x21, "primary-0"), fm("seg_p2", 25*MiB, 0x22, "primary-0")},
			Commit: commitAt("h1", 900, 900),
		},
		Settings: DefaultSettings(),
	}
}

func mustValid(t *testing.T, in Input, p Plan) {
	t.Helper()
	if err := p.Validate(in); err != nil {
		t.Fatalf("Validate: %v\n%s", err, p.Explain())
	}
}

func hasReason(t *testing.T, p Plan, sub string) {
	t.Helper()
	for _, r := range p.Reasons {
		if strings.Contains(r, sub) {
			return
		}
	}
	t.Errorf("no reason contains %q; reasons:\n  %s", sub, strings.Join(p.Reasons, "\n  "))
}

func wantKind(t *testing.T, p Plan, k Kind) {
	t.Helper()
	if p.Kind != k {
		t.Fatalf("kind = %s, want %s\n%s", p.Kind, k, p.Explain())
	}
}

func TestUnsortedInputGivesTheSamePlan(t *testing.T) {
	in := failover()
	in.Target.Meta.Files = []shardstore.FileMeta{in.Snapshot.Files[1], in.Source.Meta.Files[1], in.Snapshot.Files[0]}
	want := Compute(in)
	slices.Reverse(in.Source.Meta.Files)
	slices.Reverse(in.Snapshot.Files)
	slices.Reverse(in.Target.Meta.Files)
	got := Compute(in)
	mustValid(t, in, got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unsorted input changed the plan:\n%s\nwant\n%s", got.Explain(), want.Explain())
	}
	if !reflect.DeepEqual(Compute(in), got) {
		t.Error("Compute is not deterministic")
	}
}
