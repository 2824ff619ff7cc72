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

func TestOpsOnlyWhenSameHistoryAndOpsRetained(t *testing.T) {
	in := failover()
	in.Target.Meta.Commit = commitAt("h1", 880, 870)
	in.Source.Leases = []seqno.RetentionLease{{ID: "far", RetainingSeqNo: 100}, {ID: "near", RetainingSeqNo: 860}, {ID: "above", RetainingSeqNo: 900}}
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindOpsOnly)
	if p.Ops != (seqno.Range{From: 871, To: 930}) || p.Lease.RetainingSeqNo != 871 || p.Lease.ProtectedBy != "near" {
		t.Errorf("ops %v lease %+v", p.Ops, p.Lease)
	}
	if len(p.FromPeer)+len(p.FromSnapshot) != 0 || p.BytesFromRepo != 0 || p.BytesFromPeer != 0 || p.Fallback != nil {
		t.Errorf("ops-only moves files: %s", p)
	}
	if p.Commit != in.Target.Meta.Commit {
		t.Errorf("commit = %+v, want the target's", p.Commit)
	}
	hasReason(t, p, "ops-only: the target's commit shares history h1")
}

func TestFileBasedWhenHistoryDiffers(t *testing.T) {
	in := failover()
	in.Target.Meta.Commit = commitAt("h0", 920, 920) // would be retained, but another history
	in.Snapshot.State = SnapshotNone
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	hasReason(t, p, "target history h0 differs from the source's h1")
	if p.Commit.HistoryUUID != "h1" || p.Ops != (seqno.Range{From: 901, To: 930}) {
		t.Errorf("commit %+v ops %v", p.Commit, p.Ops)
	}
}

func TestFileBasedWhenOpsCompacted(t *testing.T) {
	in := failover()
	in.Snapshot.State = SnapshotNone
	// Target at 800: ops 801..849 are gone (ErrCompacted in the op log).
	in.Target.Meta.Commit = commitAt("h1", 800, 800)
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	hasReason(t, p, "ops [801..849] are no longer retained (compacted")
	// One op short is enough to need files.
	in.Target.Meta.Commit = commitAt("h1", 848, 848)
	wantKind(t, Compute(in), KindPeer)
	in.Target.Meta.Commit = commitAt("h1", 849, 849)
	wantKind(t, Compute(in), KindOpsOnly)
}

func TestSnapshotAfterPrimaryFailover(t *testing.T) {
	in := failover()
	if anyIdentical(in.Source.Meta.Files, in.Target.Meta.Files) || anyIdentical(in.Source.Meta.Files, in.Snapshot.Files) {
		t.Fatal("the failover input must share no physical file")
	}
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindSnapshot)
	if p.SnapshotID != "s-42" || len(p.FromSnapshot) != 2 || len(p.FromPeer) != 0 || p.BytesFromRepo != 95*MiB {
		t.Errorf("plan %s", p)
	}
	if p.Ops != (seqno.Range{From: 901, To: 930}) || p.Commit != in.Snapshot.Commit {
		t.Errorf("ops %v commit %+v", p.Ops, p.Commit)
	}
	if p.Fallback == nil || p.Fallback.Kind != KindPeer {
		t.Fatalf("fallback = %v, want a peer plan", p.Fallback)
	}
	if err := validate(*p.Fallback, prepare(in)); err != nil {
		t.Errorf("fallback invalid: %v", err)
	}
	if len(p.Fallback.FromPeer) != 2 || p.Fallback.BytesFromPeer != 100*MiB {
		t.Errorf("fallback %s", p.Fallback)
	}
	hasReason(t, p, "snapshot s-42 is logically equivalent to the source commit")
	hasReason(t, p, "fallback: the peer plan")
}

func TestOlderSnapshotUsedWhenSourceRetainsOpsAndItSparesTheSource(t *testing.T) {
	in := failover()
	in.Target = Target{Empty: true, Version: "0.1.0", MaxFormat: 1}
	in.Snapshot.Commit = commitAt("h1", 860, 860)
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindSnapshot)
	if p.Ops != (seqno.Range{From: 861, To: 930}) || p.Lease.RetainingSeqNo != 861 {
		t.Errorf("ops %v lease %+v", p.Ops, p.Lease)
	}
	if p.BytesFromSource >= p.Fallback.BytesFromSource {
		t.Errorf("older snapshot reads %d off the source, peer %d", p.BytesFromSource, p.Fallback.BytesFromSource)
	}
	hasReason(t, p, "snapshot s-42 is behind the source commit (checkpoint 860, source commit 900)")

	// The source no longer retains the ops above the snapshot: not possible.
	in.Snapshot.Commit = commitAt("h1", 840, 840)
	p = Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	hasReason(t, p, "snapshot s-42 + ops not possible")
}

func TestOlderSnapshotNotUsedWhenItReadsMoreOffTheSource(t *testing.T) {
	in := failover()
	in.Target = Target{Empty: true, Version: "0.1.0", MaxFormat: 1}
	in.Snapshot.Commit = commitAt("h1", 860, 860)
	in.Source.OpBytes = 4 * MiB // 70 ops * 4 MiB = 280 MiB > 100 MiB of files + 30 ops
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	hasReason(t, p, "snapshot s-42 + ops not chosen")
	// Cheap repository bytes do not change that: the rule is bytes off the source.
	in.Settings.RepoByteCost = 1e-9
	wantKind(t, Compute(in), KindPeer)
}

func TestHybridTakesSameFilesFromSnapshotRestFromPeer(t *testing.T) {
	in := failover()
	in.Target = Target{Empty: true, Version: "0.1.0", MaxFormat: 1}
	// The snapshot was taken on the source itself, before seg_r2 existed;
	// its commit is older than what the source retains.
	in.Snapshot.Files = []shardstore.FileMeta{fm("seg_0", 5*MiB, 1, "replica-1"), in.Source.Meta.Files[0]}
	in.Snapshot.Commit = commitAt("h1", 700, 700)
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindHybrid)
	if !reflect.DeepEqual(names(p.FromSnapshot), []string{"seg_r1"}) || !reflect.DeepEqual(names(p.FromPeer), []string{"seg_r2"}) {
		t.Errorf("split %s", p)
	}
	if p.Commit != in.Source.Meta.Commit || p.Fallback == nil || p.Fallback.Kind != KindPeer {
		t.Errorf("commit %+v fallback %v", p.Commit, p.Fallback)
	}
	// A snapshot file with the same name and checksum but another writer is not the same file.
	in.Snapshot.Files[1].WriterUUID = "someone-else"
	p = Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	hasReason(t, p, "hybrid not possible")
}

func TestSnapshotWithSourcesFilesIsUsedAsHybrid(t *testing.T) {
	in := failover()
	in.Snapshot.Files = in.Source.Meta.Files
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindHybrid)
	if len(p.FromSnapshot) != 2 || len(p.FromPeer) != 0 {
		t.Errorf("split %s", p)
	}
	hasReason(t, p, "the snapshot s-42 plan not chosen")
}

func TestPeerWhenSnapshotsDisabledInSettings(t *testing.T) {
	in := failover()
	in.Settings.UseSnapshots = false
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	hasReason(t, p, "snapshots not used: disabled in settings")
}

func TestPeerWhenRepositoryDisabled(t *testing.T) {
	in := failover()
	in.Snapshot = Snapshot{State: SnapshotDisabled}
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	hasReason(t, p, "snapshot repository disabled")
}

func TestPeerWhenRepositoryUnavailable(t *testing.T) {
	in := failover()
	in.Snapshot.State, in.Snapshot.Err = SnapshotUnavailable, "s3: 503 SlowDown"
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	hasReason(t, p, "snapshot repository unavailable (s3: 503 SlowDown)")
}

func TestPeerWhenNoSnapshot(t *testing.T) {
	for _, st := range []SnapshotState{SnapshotNone, "", "bogus"} {
		in := failover()
		in.Snapshot.State = st
		p := Compute(in)
		mustValid(t, in, p)
		wantKind(t, p, KindPeer)
	}
}

func TestPeerWhenSnapshotWriterNewerThanTarget(t *testing.T) {
	in := failover()
	in.Source.Version, in.Target.Version = "2.1.0", "2.1.0"
	in.Source.Meta.Commit.WriterVersion = "2.1.0"
	in.Snapshot.Commit.WriterVersion = "2.3.0"
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	hasReason(t, p, "snapshot s-42 rejected: written by 2.3.0, target runs 2.1.0")
	// A target already upgraded reads it.
	in.Target.Version = "2.3.0"
	wantKind(t, Compute(in), KindSnapshot)
}

func TestPeerWhenSnapshotFormatNewerThanTarget(t *testing.T) {
	in := failover()
	in.Snapshot.Commit.FormatVersion = 2
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	hasReason(t, p, "snapshot s-42 rejected: format 2, target reads formats up to 1")
}

func TestRefusedWhenTargetOlderThanSource(t *testing.T) {
	in := failover()
	in.Source.Version, in.Target.Version = "2.3.0", "2.1.0"
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindRefused)
	if !p.Refused() || !strings.Contains(p.String(), "target runs 2.1.0, older than the source's 2.3.0") {
		t.Errorf("String() = %q", p.String())
	}
	// Refused even though ops-only would otherwise apply.
	in.Target.Meta.Commit = commitAt("h1", 900, 900)
	wantKind(t, Compute(in), KindRefused)
	// Pre-releases sort below their release.
	in.Source.Version, in.Target.Version = "2.3.0", "2.3.0-rc.1"
	wantKind(t, Compute(in), KindRefused)
	// A newer target is fine.
	in.Source.Version, in.Target.Version = "2.1.0", "2.3.0"
	in.Target.MaxFormat = 2
	wantKind(t, Compute(in), KindOpsOnly)
}

func TestRefusedWhenTargetReadsOlderFormat(t *testing.T) {
	in := failover()
	in.Source.MaxFormat = 2
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindRefused)
	hasReason(t, p, "the source writes format 2, target reads formats up to 1")
	in = failover()
	in.Source.Meta.Commit.FormatVersion = 2
	wantKind(t, Compute(in), KindRefused)
}

func TestRefusedWhenSourceLostOpsAboveItsCommit(t *testing.T) {
	in := failover()
	in.Source.Retained = seqno.Range{From: 910, To: 930}
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindRefused)
	hasReason(t, p, "ops [901..909] are no longer retained")
}

func TestNewEmptyTargetGetsEverything(t *testing.T) {
	in := failover()
	in.Target = Target{Empty: true, Version: "0.1.0", MaxFormat: 1, Meta: in.Source.Meta} // Meta ignored
	in.Snapshot.State = SnapshotNone
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	if len(p.Reused) != 0 || len(p.FromPeer) != 2 {
		t.Errorf("split %s", p)
	}
	hasReason(t, p, "target is a new, empty copy")
}

func TestCorruptTargetTreatedAsEmpty(t *testing.T) {
	in := failover()
	in.Snapshot.State = SnapshotNone
	in.Target.Meta = in.Source.Meta // would be all reused, ops-only even
	in.Target.Unreadable = "commit_9: footer checksum mismatch"
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	if len(p.Reused) != 0 || len(p.FromPeer) != 2 {
		t.Errorf("split %s", p)
	}
	hasReason(t, p, "target metadata is unreadable (commit_9: footer checksum mismatch): treated as empty")

	// Metadata that is readable but makes no sense is treated the same way.
	in.Target.Unreadable = ""
	in.Target.Meta.Files = append(slices.Clone(in.Source.Meta.Files), in.Source.Meta.Files[0])
	p = Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	hasReason(t, p, "target metadata is invalid (it lists file seg_r1 twice)")
}

func TestIdenticalFilesNeverCopiedAgain(t *testing.T) {
	in := failover()
	// The target holds one of the source's files, one of the snapshot's, and
	// one that only shares a name with a source file.
	in.Target.Meta.Files = []shardstore.FileMeta{in.Snapshot.Files[0], in.Source.Meta.Files[0], fm("seg_r2", 40*MiB, 0x99, "replica-1")}
	for _, use := range []bool{true, false} {
		in.Settings.UseSnapshots = use
		p := Compute(in)
		mustValid(t, in, p)
		for pl := &p; pl != nil; pl = pl.Fallback {
			for _, f := range slices.Concat(pl.FromPeer, pl.FromSnapshot) {
				if tf, ok := lookup(in.Target.Meta.Files, f.Name); ok && tf.SameAs(f) {
					t.Errorf("%s plan copies %s, identical on the target", pl.Kind, f.Name)
				}
			}
			if len(pl.Reused) != 1 {
				t.Errorf("%s plan reuses %v, want exactly one file", pl.Kind, names(pl.Reused))
			}
		}
	}
	// With everything already there, nothing moves but ops.
	in = failover()
	in.Target.Meta.Files = in.Source.Meta.Files
	in.Settings.UseSnapshots = false
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	if len(p.FromPeer) != 0 || p.BytesReused != 100*MiB {
		t.Errorf("split %s", p)
	}
	hasReason(t, p, "every file of the source's commit is already on the target")
}

func TestCostWeightsDecide(t *testing.T) {
	in := failover()
	in.Snapshot.Files = []shardstore.FileMeta{in.Source.Meta.Files[0]}
	in.Snapshot.Commit = commitAt("h1", 100, 100) // too old to restore
	wantKind(t, Compute(in), KindHybrid)
	// Repository bytes made dearer than source bytes: the peer wins.
	in.Settings.RepoByteCost = 2
	p := Compute(in)
	mustValid(t, in, p)
	wantKind(t, p, KindPeer)
	hasReason(t, p, "the hybrid plan with snapshot s-42 not chosen")
	// Invalid weights fall back to the defaults, and say so.
	in.Settings.RepoByteCost = -1
	p = Compute(in)
	wantKind(t, p, KindHybrid)
	hasReason(t, p, "setting repo_byte_cost=-1 is not a usable weight")
}

func TestInvalidSourceIsRefused(t *testing.T) {
	cases := map[string]func(*Input){
		"duplicate file": func(in *Input) {
			in.Source.Meta.Files = append(in.Source.Meta.Files, in.Source.Meta.Files[0])
		},
		"bad name":         func(in *Input) { in.Source.Meta.Files[0].Name = "../etc/passwd" },
		"negative length":  func(in *Input) { in.Source.Meta.Files[0].Length = -1 },
		"no history":       func(in *Input) { in.Source.Meta.Commit.HistoryUUID = "" },
		"checkpoint > max": func(in *Input) { in.Source.Meta.Commit.LocalCheckpoint = 901 },
		"max below commit": func(in *Input) { in.Source.MaxSeqNo = 899 },
		"bad version":      func(in *Input) { in.Source.Version = "latest" },
		"bad target ver":   func(in *Input) { in.Target.Version = "" },
		"bad range":        func(in *Input) { in.Source.Retained = seqno.Range{From: -5, To: 930} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			in := failover()
			mutate(&in)
			p := Compute(in)
			mustValid(t, in, p)
			wantKind(t, p, KindRefused)
		})
	}
}

func TestInvalidSnapshotIsRejected(t *testing.T) {
	cases := map[string]func(*Input){
		"duplicate file": func(in *Input) { in.Snapshot.Files = append(in.Snapshot.Files, in.Snapshot.Files[0]) },
		"bad name":       func(in *Input) { in.Snapshot.Files[0].Name = "a/b" },
		"no id":          func(in *Input) { in.Snapshot.ID = "" },
		"no version":     func(in *Input) { in.Snapshot.Commit.WriterVersion = "" },
		"inconsistent":   func(in *Input) { in.Snapshot.Commit.LocalCheckpoint = 901 },
		"ahead":          func(in *Input) { in.Snapshot.Commit = commitAt("h1", 920, 920) },
		"other history":  func(in *Input) { in.Snapshot.Commit.HistoryUUID = "h0" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			in := failover()
			mutate(&in)
			p := Compute(in)
			mustValid(t, in, p)
			wantKind(t, p, KindPeer)
			hasReason(t, p, "snapshot")
		})
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

func TestPlanDoesNotAliasInput(t *testing.T) {
	in := failover()
	in.Target.Meta.Commit = commitAt("h1", 900, 900)
	p := Compute(in)
	wantKind(t, p, KindOpsOnly)
	p.Reused[0].Name = "changed"
	if in.Target.Meta.Files[0].Name == "changed" {
		t.Error("the plan's Reused list aliases the target's file list")
	}
}

func TestOpsOnlyRefusedForOpsAboveGlobalCheckpointFromAnOlderTerm(t *testing.T) {
	in := failover()
	in.Source.Meta.Commit.PrimaryTerm = 2
	in.Source.Retained = seqno.Range{From: 0, To: 930}
	in.Target.Meta.Commit = commitAt("h1", 905, 905) // old primary's ops 801..905
	in.Target.Meta.Commit.GlobalCheckpoint = 800
	in.Target.Meta.Commit.PrimaryTerm = 1
	p := Compute(in)
	mustValid(t, in, p)
	if p.Kind == KindOpsOnly {
		t.Fatalf("ops-only over ops that may differ from the new primary's\n%s", p.Explain())
	}
	hasReason(t, p, "above its global checkpoint 800")

	// Its commit's own term says nothing of the ops it holds: a copy whose
	// term was raised from the new primary's ops while it kept the old
	// primary's is not continued either.
	in.Target.Meta.Commit.PrimaryTerm = 2
	in.Target.Meta.Commit.MaxTermAboveGlobalCheckpoint = 1
	p = Compute(in)
	mustValid(t, in, p)
	if p.Kind == KindOpsOnly {
		t.Fatalf("ops-only over term-1 ops in a commit of term 2\n%s", p.Explain())
	}
	hasReason(t, p, "of primary terms up to 1, older than the source's term 2")

	// Ops above the global checkpoint of the source's term (taken from the
	// new primary) continue, whatever the copy's own term.
	in.Target.Meta.Commit.PrimaryTerm = 1
	in.Target.Meta.Commit.MaxTermAboveGlobalCheckpoint = 2
	in.Target.Meta.Commit.MaxSeqNo, in.Target.Meta.Commit.LocalCheckpoint = 880, 880
	wantKind(t, Compute(in), KindOpsOnly)
}

func TestSnapshotCommitFromOlderTermAboveGlobalCheckpointNotRestored(t *testing.T) {
	in := failover()
	in.Source.Meta.Commit.PrimaryTerm = 2
	in.Snapshot.Commit.PrimaryTerm = 1
	in.Snapshot.Commit.GlobalCheckpoint = 850
	p := Compute(in)
	mustValid(t, in, p)
	if p.Kind == KindSnapshot {
		t.Fatalf("restored a snapshot commit that may hold ops the new primary lacks\n%s", p.Explain())
	}
	hasReason(t, p, "snapshot s-42's commit cannot be restored")

	// A snapshot commit of the new term whose ops above its global
	// checkpoint are of the old term is not restored either.
	in.Snapshot.Commit.PrimaryTerm = 2
	in.Snapshot.Commit.MaxTermAboveGlobalCheckpoint = 1
	if p := Compute(in); p.Kind == KindSnapshot {
		t.Fatalf("restored a term-2 snapshot commit holding term-1 ops above its global checkpoint\n%s", p.Explain())
	}
	// Its ops above the global checkpoint of the source's term: usable.
	in.Snapshot.Commit.MaxTermAboveGlobalCheckpoint = 2
	wantKind(t, Compute(in), KindSnapshot)

	// Taken when every copy was in sync (global checkpoint = max): usable.
	in.Snapshot.Commit.PrimaryTerm, in.Snapshot.Commit.MaxTermAboveGlobalCheckpoint = 1, 0
	in.Snapshot.Commit.GlobalCheckpoint = 900
	wantKind(t, Compute(in), KindSnapshot)
}
