package planner

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// planCase is one recovery situation, failover() as change leaves it, and
// the plan Compute must make for it. Every plan must pass Validate.
type planCase struct {
	name    string
	change  func(in *Input) // nil: failover() as it is
	kind    Kind            // "": check says what the kind may be
	reasons []string        // each a piece of text some reason must contain
	check   func(t *testing.T, in Input, p Plan)
}

func TestCompute(t *testing.T) {
	for _, c := range slices.Concat(choiceCases, snapshotCases, refusalCases, targetCases, termCases, invalidInputCases) {
		t.Run(c.name, func(t *testing.T) {
			in := failover()
			if c.change != nil {
				c.change(&in)
			}
			p := Compute(in)
			mustValid(t, in, p)
			if c.kind != "" {
				wantKind(t, p, c.kind)
			}
			for _, r := range c.reasons {
				hasReason(t, p, r)
			}
			if c.check != nil {
				c.check(t, in, p)
			}
		})
	}
}

func emptyTarget(in *Input) { in.Target = Target{Empty: true, Version: "0.1.0", MaxFormat: 1} }

// choiceCases: which kind of plan the history, the retained ops and the
// costs choose.
var choiceCases = []planCase{
	{
		name: "ops-only when same history and ops retained",
		change: func(in *Input) {
			in.Target.Meta.Commit = commitAt("h1", 880, 870)
			in.Source.Leases = []seqno.RetentionLease{{ID: "far", RetainingSeqNo: 100}, {ID: "near", RetainingSeqNo: 860}, {ID: "above", RetainingSeqNo: 900}}
		},
		kind:    KindOpsOnly,
		reasons: []string{"ops-only: the target's commit shares history h1"},
		check: func(t *testing.T, in Input, p Plan) {
			if p.Ops != (seqno.Range{From: 871, To: 930}) || p.Lease.RetainingSeqNo != 871 || p.Lease.ProtectedBy != "near" {
				t.Errorf("ops %v lease %+v", p.Ops, p.Lease)
			}
			if len(p.FromPeer)+len(p.FromSnapshot) != 0 || p.BytesFromRepo != 0 || p.BytesFromPeer != 0 || p.Fallback != nil {
				t.Errorf("ops-only moves files: %s", p)
			}
			if p.Commit != in.Target.Meta.Commit {
				t.Errorf("commit = %+v, want the target's", p.Commit)
			}
		},
	},
	{
		name: "file-based when history differs",
		change: func(in *Input) {
			in.Target.Meta.Commit = commitAt("h0", 920, 920) // would be retained, but another history
			in.Snapshot.State = SnapshotNone
		},
		kind:    KindPeer,
		reasons: []string{"target history h0 differs from the source's h1"},
		check: func(t *testing.T, in Input, p Plan) {
			if p.Commit.HistoryUUID != "h1" || p.Ops != (seqno.Range{From: 901, To: 930}) {
				t.Errorf("commit %+v ops %v", p.Commit, p.Ops)
			}
		},
	},
	{
		// Target at 800: ops 801..849 are gone (ErrCompacted in the op log).
		name:    "file-based when ops compacted",
		change:  func(in *Input) { in.Snapshot.State = SnapshotNone; in.Target.Meta.Commit = commitAt("h1", 800, 800) },
		kind:    KindPeer,
		reasons: []string{"ops [801..849] are no longer retained (compacted"},
	},
	{
		name:   "file-based when one op short",
		change: func(in *Input) { in.Snapshot.State = SnapshotNone; in.Target.Meta.Commit = commitAt("h1", 848, 848) },
		kind:   KindPeer,
	},
	{
		name:   "ops-only when no op is short",
		change: func(in *Input) { in.Snapshot.State = SnapshotNone; in.Target.Meta.Commit = commitAt("h1", 849, 849) },
		kind:   KindOpsOnly,
	},
	{
		name: "cost weights: hybrid with the defaults",
		change: func(in *Input) {
			in.Snapshot.Files = []shardstore.FileMeta{in.Source.Meta.Files[0]}
			in.Snapshot.Commit = commitAt("h1", 100, 100) // too old to restore
		},
		kind: KindHybrid,
	},
	{
		// Repository bytes made dearer than source bytes: the peer wins.
		name: "cost weights: peer when repository bytes are dearer",
		change: func(in *Input) {
			in.Snapshot.Files = []shardstore.FileMeta{in.Source.Meta.Files[0]}
			in.Snapshot.Commit = commitAt("h1", 100, 100)
			in.Settings.RepoByteCost = 2
		},
		kind:    KindPeer,
		reasons: []string{"the hybrid plan with snapshot s-42 not chosen"},
	},
	{
		// Invalid weights fall back to the defaults, and say so.
		name: "cost weights: invalid ones fall back to the defaults",
		change: func(in *Input) {
			in.Snapshot.Files = []shardstore.FileMeta{in.Source.Meta.Files[0]}
			in.Snapshot.Commit = commitAt("h1", 100, 100)
			in.Settings.RepoByteCost = -1
		},
		kind:    KindHybrid,
		reasons: []string{"setting repo_byte_cost=-1 is not a usable weight"},
	},
}

// snapshotCases: when a snapshot is used, whole or in part, and when not.
var snapshotCases = []planCase{
	{
		name: "snapshot after primary failover",
		kind: KindSnapshot,
		reasons: []string{
			"snapshot s-42 is logically equivalent to the source commit",
			"fallback: the peer plan",
		},
		check: func(t *testing.T, in Input, p Plan) {
			if anyIdentical(in.Source.Meta.Files, in.Target.Meta.Files) || anyIdentical(in.Source.Meta.Files, in.Snapshot.Files) {
				t.Fatal("the failover input must share no physical file")
			}
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
		},
	},
	{
		name:    "older snapshot used when the source retains ops and it spares the source",
		change:  func(in *Input) { emptyTarget(in); in.Snapshot.Commit = commitAt("h1", 860, 860) },
		kind:    KindSnapshot,
		reasons: []string{"snapshot s-42 is behind the source commit (checkpoint 860, source commit 900)"},
		check: func(t *testing.T, in Input, p Plan) {
			if p.Ops != (seqno.Range{From: 861, To: 930}) || p.Lease.RetainingSeqNo != 861 {
				t.Errorf("ops %v lease %+v", p.Ops, p.Lease)
			}
			if p.BytesFromSource >= p.Fallback.BytesFromSource {
				t.Errorf("older snapshot reads %d off the source, peer %d", p.BytesFromSource, p.Fallback.BytesFromSource)
			}
		},
	},
	{
		// The source no longer retains the ops above the snapshot: not possible.
		name:    "older snapshot not possible when the source lost the ops above it",
		change:  func(in *Input) { emptyTarget(in); in.Snapshot.Commit = commitAt("h1", 840, 840) },
		kind:    KindPeer,
		reasons: []string{"snapshot s-42 + ops not possible"},
	},
	{
		name: "older snapshot not used when it reads more off the source",
		change: func(in *Input) {
			emptyTarget(in)
			in.Snapshot.Commit = commitAt("h1", 860, 860)
			in.Source.OpBytes = 4 * MiB // 70 ops * 4 MiB = 280 MiB > 100 MiB of files + 30 ops
		},
		kind:    KindPeer,
		reasons: []string{"snapshot s-42 + ops not chosen"},
	},
	{
		// Cheap repository bytes do not change that: the rule is bytes off the source.
		name: "older snapshot not used when it reads more off the source, however cheap the repository",
		change: func(in *Input) {
			emptyTarget(in)
			in.Snapshot.Commit = commitAt("h1", 860, 860)
			in.Source.OpBytes = 4 * MiB
			in.Settings.RepoByteCost = 1e-9
		},
		kind: KindPeer,
	},
	{
		// The snapshot was taken on the source itself, before seg_r2
		// existed; its commit is older than what the source retains.
		name:   "hybrid takes the same files from the snapshot, the rest from the peer",
		change: hybridInput,
		kind:   KindHybrid,
		check: func(t *testing.T, in Input, p Plan) {
			if !reflect.DeepEqual(names(p.FromSnapshot), []string{"seg_r1"}) || !reflect.DeepEqual(names(p.FromPeer), []string{"seg_r2"}) {
				t.Errorf("split %s", p)
			}
			if p.Commit != in.Source.Meta.Commit || p.Fallback == nil || p.Fallback.Kind != KindPeer {
				t.Errorf("commit %+v fallback %v", p.Commit, p.Fallback)
			}
		},
	},
	{
		// A snapshot file with the same name and checksum but another writer is not the same file.
		name:    "hybrid not possible when the file's writer differs",
		change:  func(in *Input) { hybridInput(in); in.Snapshot.Files[1].WriterUUID = "someone-else" },
		kind:    KindPeer,
		reasons: []string{"hybrid not possible"},
	},
	{
		name:    "snapshot with the source's files is used as hybrid",
		change:  func(in *Input) { in.Snapshot.Files = in.Source.Meta.Files },
		kind:    KindHybrid,
		reasons: []string{"the snapshot s-42 plan not chosen"},
		check: func(t *testing.T, in Input, p Plan) {
			if len(p.FromSnapshot) != 2 || len(p.FromPeer) != 0 {
				t.Errorf("split %s", p)
			}
		},
	},
	{
		name:    "peer when snapshots disabled in settings",
		change:  func(in *Input) { in.Settings.UseSnapshots = false },
		kind:    KindPeer,
		reasons: []string{"snapshots not used: disabled in settings"},
	},
	{
		name:    "peer when repository disabled",
		change:  func(in *Input) { in.Snapshot = Snapshot{State: SnapshotDisabled} },
		kind:    KindPeer,
		reasons: []string{"snapshot repository disabled"},
	},
	{
		name:    "peer when repository unavailable",
		change:  func(in *Input) { in.Snapshot.State, in.Snapshot.Err = SnapshotUnavailable, "s3: 503 SlowDown" },
		kind:    KindPeer,
		reasons: []string{"snapshot repository unavailable (s3: 503 SlowDown)"},
	},
	{name: "peer when no snapshot", change: func(in *Input) { in.Snapshot.State = SnapshotNone }, kind: KindPeer},
	{name: "peer when no snapshot state", change: func(in *Input) { in.Snapshot.State = "" }, kind: KindPeer},
	{name: "peer when an unknown snapshot state", change: func(in *Input) { in.Snapshot.State = "bogus" }, kind: KindPeer},
	{
		name:    "peer when snapshot writer newer than target",
		change:  func(in *Input) { snapshotWriterNewer(in, "2.1.0") },
		kind:    KindPeer,
		reasons: []string{"snapshot s-42 rejected: written by 2.3.0, target runs 2.1.0"},
	},
	{
		// A target already upgraded reads it.
		name:   "snapshot when the target runs the snapshot writer's version",
		change: func(in *Input) { snapshotWriterNewer(in, "2.3.0") },
		kind:   KindSnapshot,
	},
	{
		name:    "peer when snapshot format newer than target",
		change:  func(in *Input) { in.Snapshot.Commit.FormatVersion = 2 },
		kind:    KindPeer,
		reasons: []string{"snapshot s-42 rejected: format 2, target reads formats up to 1"},
	},
}

func hybridInput(in *Input) {
	emptyTarget(in)
	in.Snapshot.Files = []shardstore.FileMeta{fm("seg_0", 5*MiB, 1, "replica-1"), in.Source.Meta.Files[0]}
	in.Snapshot.Commit = commitAt("h1", 700, 700)
}

// snapshotWriterNewer: the snapshot written by 2.3.0, the source on 2.1.0.
func snapshotWriterNewer(in *Input, target string) {
	in.Source.Version, in.Target.Version = "2.1.0", target
	in.Source.Meta.Commit.WriterVersion = "2.1.0"
	in.Snapshot.Commit.WriterVersion = "2.3.0"
}

// refusalCases: versions and formats the target cannot take, and a source
// that cannot serve.
var refusalCases = []planCase{
	{
		name:   "refused when target older than source",
		change: func(in *Input) { in.Source.Version, in.Target.Version = "2.3.0", "2.1.0" },
		kind:   KindRefused,
		check: func(t *testing.T, in Input, p Plan) {
			if !p.Refused() || !strings.Contains(p.String(), "target runs 2.1.0, older than the source's 2.3.0") {
				t.Errorf("String() = %q", p.String())
			}
		},
	},
	{
		// Refused even though ops-only would otherwise apply.
		name: "refused when target older than source, although ops-only would apply",
		change: func(in *Input) {
			in.Source.Version, in.Target.Version = "2.3.0", "2.1.0"
			in.Target.Meta.Commit = commitAt("h1", 900, 900)
		},
		kind: KindRefused,
	},
	{
		// Pre-releases sort below their release.
		name: "refused when target runs a pre-release of the source's version",
		change: func(in *Input) {
			in.Target.Meta.Commit = commitAt("h1", 900, 900)
			in.Source.Version, in.Target.Version = "2.3.0", "2.3.0-rc.1"
		},
		kind: KindRefused,
	},
	{
		// A newer target is fine.
		name: "ops-only when target newer than source",
		change: func(in *Input) {
			in.Target.Meta.Commit = commitAt("h1", 900, 900)
			in.Source.Version, in.Target.Version = "2.1.0", "2.3.0"
			in.Target.MaxFormat = 2
		},
		kind: KindOpsOnly,
	},
	{
		name:    "refused when target reads older format",
		change:  func(in *Input) { in.Source.MaxFormat = 2 },
		kind:    KindRefused,
		reasons: []string{"the source writes format 2, target reads formats up to 1"},
	},
	{
		name:   "refused when the source's commit is of a format the target cannot read",
		change: func(in *Input) { in.Source.Meta.Commit.FormatVersion = 2 },
		kind:   KindRefused,
	},
	{
		name: "the snapshot retention lease stopped at its bound: the plan says why the snapshot is not usable",
		change: func(in *Input) {
			emptyTarget(in)
			in.Snapshot.Commit = commitAt("h1", 800, 800)
			in.Source.Retained = seqno.Range{From: 880, To: 930}
			in.Source.Leases = []seqno.RetentionLease{{ID: seqno.SnapshotLeaseID, RetainingSeqNo: 880}}
		},
		kind:    KindPeer,
		reasons: []string{"snapshot s-42 + ops not possible", "snapshot retention lease (snapshot-retention) retains from seqno 880 only: it stopped at its bound"},
	},
	{
		name:    "refused when source lost ops above its commit",
		change:  func(in *Input) { in.Source.Retained = seqno.Range{From: 910, To: 930} },
		kind:    KindRefused,
		reasons: []string{"ops [901..909] are no longer retained"},
	},
}

// targetCases: what the target holds, and what of it is kept.
var targetCases = []planCase{
	{
		name: "new empty target gets everything",
		change: func(in *Input) {
			in.Target = Target{Empty: true, Version: "0.1.0", MaxFormat: 1, Meta: in.Source.Meta} // Meta ignored
			in.Snapshot.State = SnapshotNone
		},
		kind:    KindPeer,
		reasons: []string{"target is a new, empty copy"},
		check:   wantAllFromPeer,
	},
	{
		name: "corrupt target treated as empty",
		change: func(in *Input) {
			in.Snapshot.State = SnapshotNone
			in.Target.Meta = in.Source.Meta // would be all reused, ops-only even
			in.Target.Unreadable = "commit_9: footer checksum mismatch"
		},
		kind:    KindPeer,
		reasons: []string{"target metadata is unreadable (commit_9: footer checksum mismatch): treated as empty"},
		check:   wantAllFromPeer,
	},
	{
		// Metadata that is readable but makes no sense is treated the same way.
		name: "invalid target metadata treated as empty",
		change: func(in *Input) {
			in.Snapshot.State = SnapshotNone
			in.Target.Meta = in.Source.Meta
			in.Target.Meta.Files = append(slices.Clone(in.Source.Meta.Files), in.Source.Meta.Files[0])
		},
		kind:    KindPeer,
		reasons: []string{"target metadata is invalid (it lists file seg_r1 twice)"},
	},
	{
		name:   "identical files never copied again, with snapshots",
		change: func(in *Input) { identicalOnTarget(in); in.Settings.UseSnapshots = true },
		check:  wantNothingCopiedAgain,
	},
	{
		name:   "identical files never copied again, without snapshots",
		change: func(in *Input) { identicalOnTarget(in); in.Settings.UseSnapshots = false },
		check:  wantNothingCopiedAgain,
	},
	{
		// With everything already there, nothing moves but ops.
		name:    "every file already on the target",
		change:  func(in *Input) { in.Target.Meta.Files = in.Source.Meta.Files; in.Settings.UseSnapshots = false },
		kind:    KindPeer,
		reasons: []string{"every file of the source's commit is already on the target"},
		check: func(t *testing.T, in Input, p Plan) {
			if len(p.FromPeer) != 0 || p.BytesReused != 100*MiB {
				t.Errorf("split %s", p)
			}
		},
	},
	{
		name:   "plan does not alias the input",
		change: func(in *Input) { in.Target.Meta.Commit = commitAt("h1", 900, 900) },
		kind:   KindOpsOnly,
		check: func(t *testing.T, in Input, p Plan) {
			p.Reused[0].Name = "changed"
			if in.Target.Meta.Files[0].Name == "changed" {
				t.Error("the plan's Reused list aliases the target's file list")
			}
		},
	},
}

func wantAllFromPeer(t *testing.T, in Input, p Plan) {
	if len(p.Reused) != 0 || len(p.FromPeer) != 2 {
		t.Errorf("split %s", p)
	}
}

// identicalOnTarget: the target holds one of the source's files, one of
// the snapshot's, and one that only shares a name with a source file.
func identicalOnTarget(in *Input) {
	in.Target.Meta.Files = []shardstore.FileMeta{in.Snapshot.Files[0], in.Source.Meta.Files[0], fm("seg_r2", 40*MiB, 0x99, "replica-1")}
}

func wantNothingCopiedAgain(t *testing.T, in Input, p Plan) {
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

// termCases: ops above a global checkpoint that may be of an older primary
// term are never continued or restored.
var termCases = []planCase{
	{
		name:    "ops-only refused for ops above the global checkpoint from an older term",
		change:  func(in *Input) { staleTarget(in, 1, 0) },
		reasons: []string{"above its global checkpoint 800"},
		check: func(t *testing.T, in Input, p Plan) {
			if p.Kind == KindOpsOnly {
				t.Fatalf("ops-only over ops that may differ from the new primary's\n%s", p.Explain())
			}
		},
	},
	{
		// Its commit's own term says nothing of the ops it holds: a copy
		// whose term was raised from the new primary's ops while it kept
		// the old primary's is not continued either.
		name:    "ops-only refused for ops of an older term in a commit of the source's term",
		change:  func(in *Input) { staleTarget(in, 2, 1) },
		reasons: []string{"of primary terms up to 1, older than the source's term 2"},
		check: func(t *testing.T, in Input, p Plan) {
			if p.Kind == KindOpsOnly {
				t.Fatalf("ops-only over term-1 ops in a commit of term 2\n%s", p.Explain())
			}
		},
	},
	{
		// Ops above the global checkpoint of the source's term (taken from
		// the new primary) continue, whatever the copy's own term.
		name: "ops-only for ops of the source's term above the global checkpoint",
		change: func(in *Input) {
			staleTarget(in, 1, 2)
			in.Target.Meta.Commit.MaxSeqNo, in.Target.Meta.Commit.LocalCheckpoint = 880, 880
		},
		kind: KindOpsOnly,
	},
	{
		name:    "snapshot commit from an older term above its global checkpoint not restored",
		change:  func(in *Input) { staleSnapshot(in, 1, 0, 850) },
		reasons: []string{"snapshot s-42's commit cannot be restored"},
		check: func(t *testing.T, in Input, p Plan) {
			if p.Kind == KindSnapshot {
				t.Fatalf("restored a snapshot commit that may hold ops the new primary lacks\n%s", p.Explain())
			}
		},
	},
	{
		// A snapshot commit of the new term whose ops above its global
		// checkpoint are of the old term is not restored either.
		name:   "snapshot commit of the source's term holding older ops not restored",
		change: func(in *Input) { staleSnapshot(in, 2, 1, 850) },
		check: func(t *testing.T, in Input, p Plan) {
			if p.Kind == KindSnapshot {
				t.Fatalf("restored a term-2 snapshot commit holding term-1 ops above its global checkpoint\n%s", p.Explain())
			}
		},
	},
	{
		// Its ops above the global checkpoint of the source's term: usable.
		name:   "snapshot commit with ops of the source's term restored",
		change: func(in *Input) { staleSnapshot(in, 2, 2, 850) },
		kind:   KindSnapshot,
	},
	{
		// Taken when every copy was in sync (global checkpoint = max): usable.
		name:   "snapshot commit of an older term taken in sync restored",
		change: func(in *Input) { staleSnapshot(in, 1, 0, 900) },
		kind:   KindSnapshot,
	},
}

// staleTarget: the source is primary of term 2 and retains every op; the
// target's commit (of term term) holds the old primary's ops 801..905,
// above its global checkpoint 800, of terms up to aboveTerm.
func staleTarget(in *Input, term, aboveTerm uint64) {
	in.Source.Meta.Commit.PrimaryTerm = 2
	in.Source.Retained = seqno.Range{From: 0, To: 930}
	in.Target.Meta.Commit = commitAt("h1", 905, 905) // old primary's ops 801..905
	in.Target.Meta.Commit.GlobalCheckpoint = 800
	in.Target.Meta.Commit.PrimaryTerm = term
	in.Target.Meta.Commit.MaxTermAboveGlobalCheckpoint = aboveTerm
}

// staleSnapshot: the source is primary of term 2; the snapshot's commit
// is of term term, with ops above its global checkpoint global of terms
// up to aboveTerm.
func staleSnapshot(in *Input, term, aboveTerm uint64, global seqno.SeqNo) {
	in.Source.Meta.Commit.PrimaryTerm = 2
	in.Snapshot.Commit.PrimaryTerm = term
	in.Snapshot.Commit.MaxTermAboveGlobalCheckpoint = aboveTerm
	in.Snapshot.Commit.GlobalCheckpoint = global
}

// invalidInputCases: a source that makes no sense is refused; a snapshot
// that makes no sense is not used.
var invalidInputCases = []planCase{
	invalidSource("duplicate file", func(in *Input) { in.Source.Meta.Files = append(in.Source.Meta.Files, in.Source.Meta.Files[0]) }),
	invalidSource("bad name", func(in *Input) { in.Source.Meta.Files[0].Name = "../etc/passwd" }),
	invalidSource("negative length", func(in *Input) { in.Source.Meta.Files[0].Length = -1 }),
	invalidSource("no history", func(in *Input) { in.Source.Meta.Commit.HistoryUUID = "" }),
	invalidSource("checkpoint > max", func(in *Input) { in.Source.Meta.Commit.LocalCheckpoint = 901 }),
	invalidSource("max below commit", func(in *Input) { in.Source.MaxSeqNo = 899 }),
	invalidSource("bad version", func(in *Input) { in.Source.Version = "latest" }),
	invalidSource("bad target ver", func(in *Input) { in.Target.Version = "" }),
	invalidSource("bad range", func(in *Input) { in.Source.Retained = seqno.Range{From: -5, To: 930} }),
	invalidSnapshot("duplicate file", func(in *Input) { in.Snapshot.Files = append(in.Snapshot.Files, in.Snapshot.Files[0]) }),
	invalidSnapshot("bad name", func(in *Input) { in.Snapshot.Files[0].Name = "a/b" }),
	invalidSnapshot("no id", func(in *Input) { in.Snapshot.ID = "" }),
	invalidSnapshot("no version", func(in *Input) { in.Snapshot.Commit.WriterVersion = "" }),
	invalidSnapshot("inconsistent", func(in *Input) { in.Snapshot.Commit.LocalCheckpoint = 901 }),
	invalidSnapshot("ahead", func(in *Input) { in.Snapshot.Commit = commitAt("h1", 920, 920) }),
	invalidSnapshot("other history", func(in *Input) { in.Snapshot.Commit.HistoryUUID = "h0" }),
}

func invalidSource(name string, change func(*Input)) planCase {
	return planCase{name: "invalid source: " + name, change: change, kind: KindRefused}
}

func invalidSnapshot(name string, change func(*Input)) planCase {
	return planCase{name: "invalid snapshot: " + name, change: change, kind: KindPeer, reasons: []string{"snapshot"}}
}
