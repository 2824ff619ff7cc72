package planner

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/recoverd/recoverd/shardstore"
)

// ErrInvalidPlan is wrapped by every error Validate returns.
var ErrInvalidPlan = errors.New("planner: invalid plan")

// Validate checks the plan against the input it was made for: the
// invariants every plan must keep, whichever choice was made. Every file of
// the file set is in exactly one of Reused, FromSnapshot and FromPeer, and
// nothing else is; reused files are identical on the target and snapshot
// files are in the snapshot; the op range runs from the file set's
// checkpoint + 1 to the source's max seqno and the source retains it; no op
// crosses histories; no plan continues a commit whose ops above its global
// checkpoint are of an older term than the source's; the lease starts at
// the op range; a snapshot or hybrid plan has a valid peer fallback; an
// input that demands a refusal gets one.
// The executor calls it before acting on a plan, as a defensive check.
func (p Plan) Validate(in Input) error {
	return validate(p, prepare(in))
}

func lookup(files []shardstore.FileMeta, name string) (shardstore.FileMeta, bool) {
	i, ok := slices.BinarySearchFunc(files, name, func(f shardstore.FileMeta, n string) int { return strings.Compare(f.Name, n) })
	if !ok {
		return shardstore.FileMeta{}, false
	}
	return files[i], true
}

func validate(p Plan, v *view) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s plan: %s", ErrInvalidPlan, p.Kind, fmt.Sprintf(format, args...))
	}
	if len(p.Reasons) == 0 {
		return fail("it gives no reason")
	}
	if p.Kind == KindRefused {
		if len(p.Reused)+len(p.FromSnapshot)+len(p.FromPeer) > 0 || p.Fallback != nil || p.Lease != nil || !p.Ops.Empty() {
			return fail("a refusal must move nothing")
		}
		return nil
	}
	if len(v.refusal) > 0 {
		return fail("the input demands a refusal (%s)", v.refusal[0])
	}
	if refusal, _ := v.refuseAhead(); refusal != "" {
		return fail("the input demands a refusal (%s)", refusal)
	}

	var set []shardstore.FileMeta
	var commit = v.srcCommit
	switch p.Kind {
	case KindOpsOnly:
		if !v.tgtHasData {
			return fail("the target has no commit to continue")
		}
		set, commit = v.tgt, v.tgtData
		if len(p.FromSnapshot)+len(p.FromPeer) > 0 {
			return fail("it moves files")
		}
	case KindPeer:
		set = v.src
		if len(p.FromSnapshot) > 0 {
			return fail("it reads files from the repository")
		}
	case KindHybrid:
		if !v.snapUsable {
			return fail("it uses a snapshot the input does not allow")
		}
		set = v.src
		if len(p.FromSnapshot) == 0 {
			return fail("it takes no file from the snapshot")
		}
	case KindSnapshot:
		if !v.snapUsable {
			return fail("it uses a snapshot the input does not allow")
		}
		set, commit = v.snap, v.snapCommit
		if len(p.FromPeer) > 0 {
			return fail("it reads files from the source")
		}
		if commit.MaxSeqNo > v.srcCommit.MaxSeqNo {
			return fail("the snapshot is ahead of the source commit")
		}
	default:
		return fail("unknown kind %q", p.Kind)
	}
	if p.Commit != commit {
		return fail("it publishes commit data %+v, its file set's is %+v", p.Commit, commit)
	}
	if commit.HistoryUUID != v.srcCommit.HistoryUUID {
		return fail("its file set is of history %s, the source's ops of %s: ops must never cross histories", commit.HistoryUUID, v.srcCommit.HistoryUUID)
	}
	if why := v.divergent(commit); why != "" && (p.Kind == KindOpsOnly || p.Kind == KindSnapshot) {
		return fail("it continues a commit that %s", why)
	}

	// Every file of the set exactly once.
	idx := make(map[string]int, len(set))
	for i, f := range set {
		idx[f.Name] = i
	}
	seen := make([]bool, len(set))
	check := func(list []shardstore.FileMeta, what string, ok func(shardstore.FileMeta) bool) (int64, error) {
		var n int64
		for i, f := range list {
			j, in := idx[f.Name]
			switch {
			case !in:
				return 0, fail("%s file %s is not in the file set", what, f.Name)
			case seen[j]:
				return 0, fail("file %s is listed twice", f.Name)
			case f != set[j]:
				return 0, fail("%s file %s differs from the file set's", what, f.Name)
			case i > 0 && list[i-1].Name >= f.Name:
				return 0, fail("%s files are not in name order", what)
			case !ok(f):
				return 0, fail("%s file %s is not available there", what, f.Name)
			}
			seen[j] = true
			n = addSat(n, f.Length)
		}
		return n, nil
	}
	reused, err := check(p.Reused, "reused", func(f shardstore.FileMeta) bool {
		t, ok := lookup(v.tgt, f.Name)
		return ok && t.SameAs(f)
	})
	if err != nil {
		return err
	}
	repo, err := check(p.FromSnapshot, "snapshot", func(f shardstore.FileMeta) bool {
		s, ok := lookup(v.snap, f.Name)
		return ok && s.SameAs(f)
	})
	if err != nil {
		return err
	}
	peer, err := check(p.FromPeer, "peer", func(f shardstore.FileMeta) bool {
		s, ok := lookup(v.src, f.Name)
		return ok && s.SameAs(f)
	})
	if err != nil {
		return err
	}
	for j, ok := range seen {
		if !ok {
			return fail("file %s of the file set is in no list", set[j].Name)
		}
	}
	if reused != p.BytesReused || repo != p.BytesFromRepo || peer != p.BytesFromPeer {
		return fail("byte counts do not add up")
	}

	// Ops and lease.
	if p.Ops.From > p.Ops.To+1 {
		return fail("op range %v is inverted", p.Ops)
	}
	if p.Ops.From != commit.LocalCheckpoint+1 || p.Ops.To != v.srcMax {
		return fail("op range %v, expected [%v..%v]: the file set's checkpoint + 1 to the source's max seqno", p.Ops, commit.LocalCheckpoint+1, v.srcMax)
	}
	if !v.retained.Covers(p.Ops) {
		return fail("it asks the source for ops %v, which it does not retain (%v)", p.Ops, v.retained)
	}
	if p.Lease == nil || p.Lease.RetainingSeqNo != p.Ops.From {
		return fail("its retention lease must retain from %v", p.Ops.From)
	}
	if p.OpsBytes != mulSat(p.Ops.Len(), v.opBytes) || p.BytesFromSource != addSat(p.BytesFromPeer, p.OpsBytes) {
		return fail("byte estimates do not add up")
	}

	// Snapshot and fallback.
	usesSnap := p.Kind == KindSnapshot || p.Kind == KindHybrid
	if usesSnap {
		if p.SnapshotID != v.snapID {
			return fail("it names snapshot %q, the input %q", p.SnapshotID, v.snapID)
		}
		if p.Fallback == nil {
			return fail("it has no fallback")
		}
		if p.Fallback.Kind != KindPeer || p.Fallback.Fallback != nil {
			return fail("its fallback must be a plain peer plan, not %s", p.Fallback.Kind)
		}
		if err := validate(*p.Fallback, v); err != nil {
			return fmt.Errorf("fallback: %w", err)
		}
	} else if p.SnapshotID != "" || p.Fallback != nil {
		return fail("it names a snapshot or a fallback")
	}
	return nil
}
