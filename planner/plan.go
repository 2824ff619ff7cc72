package planner

import (
	"fmt"
	"math"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// candidate is one possible plan and the lines that describe it.
type candidate struct {
	plan  Plan
	label string   // "the peer plan", "the snapshot s-42 plan", ...
	desc  []string // what the plan does, in words
}

// Compute plans the recovery of in.Target from in.Source. It is a pure,
// deterministic function: same input, same plan. The plan is either
// refused (Reasons say why) or one Validate accepts.
func Compute(in Input) Plan {
	v := prepare(in)
	reasons := append([]string(nil), v.notes...)
	if len(v.refusal) > 0 {
		// The refusal first: it is what the operator must act on.
		return refusedPlan(append(append([]string(nil), v.refusal...), reasons...))
	}
	if refusal, note := v.refuseAhead(); refusal != "" {
		return refusedPlan(append([]string{refusal}, reasons...))
	} else if note != "" {
		reasons = append(reasons, note)
	}

	oo, why := v.opsOnly()
	if oo != nil {
		return finish(oo, nil, append(reasons, oo.desc...))
	}
	reasons = append(reasons, why)

	peer, why := v.peer()
	if why != "" {
		return refusedPlan(append([]string{why}, reasons...))
	}
	cands := []*candidate{peer}
	if v.snapUsable {
		h, why := v.hybrid()
		if why != "" {
			reasons = append(reasons, why)
		} else {
			cands = append(cands, h)
		}
		s, why := v.snapshot(peer)
		if why != "" {
			reasons = append(reasons, why)
		} else {
			cands = append(cands, s)
		}
	}

	best := cands[0]
	for _, c := range cands[1:] {
		if better(c.plan, best.plan) {
			best = c
		}
	}
	for _, c := range cands {
		if c != best {
			reasons = append(reasons, fmt.Sprintf("%s not chosen: %s, against %s for %s", c.label, costLine(c.plan), costLine(best.plan), best.label))
		}
	}
	if len(cands) == 1 {
		reasons = append(reasons, fmt.Sprintf("chosen: %s, the only one possible", best.label))
	} else {
		reasons = append(reasons, fmt.Sprintf("chosen: %s, the cheapest", best.label))
	}
	reasons = append(reasons, best.desc...)
	var fallback *candidate
	if best.plan.Kind == KindSnapshot || best.plan.Kind == KindHybrid {
		fallback = peer
		reasons = append(reasons, fmt.Sprintf("fallback: the peer plan (%s, %s from the source) if a snapshot download fails", files(len(peer.plan.FromPeer)), human(peer.plan.BytesFromSource)))
	}
	return finish(best, fallback, reasons)
}

// better orders candidates: lower cost, then fewer bytes off the source;
// on a full tie the earlier candidate (peer, hybrid, snapshot) stays.
func better(a, b Plan) bool {
	if a.Cost != b.Cost {
		return a.Cost < b.Cost
	}
	return a.BytesFromSource < b.BytesFromSource
}

// files counts files in words: "1 file", "3 files".
func files(n int) string {
	if n == 1 {
		return "1 file"
	}
	return fmt.Sprintf("%d files", n)
}

func costLine(p Plan) string {
	return fmt.Sprintf("%s from the source, %s from the repository, %d ops (cost %.4g)", human(p.BytesFromSource), human(p.BytesFromRepo), p.Ops.Len(), p.Cost)
}

func finish(c *candidate, fallback *candidate, reasons []string) Plan {
	p := c.plan
	p.Reasons = reasons
	if fallback != nil {
		fb := fallback.plan
		fb.Reasons = append([]string{"fallback plan, run if the " + string(p.Kind) + " plan fails (not if it is cancelled)"}, fallback.desc...)
		p.Fallback = &fb
	}
	return p
}

func refusedPlan(reasons []string) Plan {
	return Plan{
		Kind:         KindRefused,
		Reused:       []shardstore.FileMeta{},
		FromSnapshot: []shardstore.FileMeta{},
		FromPeer:     []shardstore.FileMeta{},
		Ops:          seqno.EmptyRange,
		Reasons:      reasons,
	}
}

// opsRange is the ops a file set at checkpoint needs from the source.
func (v *view) opsRange(checkpoint seqno.SeqNo) seqno.Range {
	return seqno.Range{From: checkpoint + 1, To: v.srcMax}
}

// notRetained describes the part of need the source no longer holds, or
// "" when it retains all of it.
func (v *view) notRetained(need seqno.Range) string {
	if v.retained.Covers(need) {
		return ""
	}
	miss := need.Missing(v.retained)
	return fmt.Sprintf("ops %s are no longer retained (compacted; the source retains %s)", fmtRange(miss[0]), fmtRange(v.retained))
}

// snapshotLeaseStopped says, when the source's snapshot retention lease
// retains from above from (the first op a snapshot needs), that the lease
// stopped at its bound: the snapshot is older than the bound lets the
// source keep ops for.
func (v *view) snapshotLeaseStopped(from seqno.SeqNo) string {
	for _, l := range v.in.Source.Leases {
		if l.ID == seqno.SnapshotLeaseID && l.RetainingSeqNo > from {
			return fmt.Sprintf("; the source's snapshot retention lease (%s) retains from seqno %v only: it stopped at its bound (--snapshot-lease-max-ops, --snapshot-lease-max-bytes), so a newer snapshot is needed to build a copy without files off the source",
				l.ID, l.RetainingSeqNo)
		}
	}
	return ""
}

// build fills a candidate's plan from its file split and op range.
func (v *view) build(kind Kind, commit shardstore.CommitData, s fileSplit, ops seqno.Range) Plan {
	p := Plan{
		Kind:          kind,
		Commit:        commit,
		Reused:        s.reused,
		FromSnapshot:  s.fromSnap,
		FromPeer:      s.fromPeer,
		Ops:           ops,
		Lease:         v.lease(ops.From),
		BytesReused:   s.bytesReused,
		BytesFromRepo: s.bytesSnap,
		BytesFromPeer: s.bytes,
		OpsBytes:      mulSat(ops.Len(), v.opBytes),
	}
	if kind == KindSnapshot || kind == KindHybrid {
		p.SnapshotID = v.snapID
	}
	p.BytesFromSource = addSat(p.BytesFromPeer, p.OpsBytes)
	p.Cost = v.settings.SourceByteCost*float64(p.BytesFromSource) +
		v.settings.RepoByteCost*float64(p.BytesFromRepo) +
		v.settings.OpCost*float64(ops.Len())
	if math.IsInf(p.Cost, 0) || math.IsNaN(p.Cost) {
		p.Cost = math.MaxFloat64
	}
	return p
}

// lease is the retention lease for ops from `from` on, naming the closest
// live source lease that already protects them.
func (v *view) lease(from seqno.SeqNo) *Lease {
	l := &Lease{RetainingSeqNo: from}
	var best seqno.RetentionLease
	for _, le := range v.in.Source.Leases {
		if le.ID == "" || le.RetainingSeqNo > from {
			continue
		}
		if l.ProtectedBy == "" || le.RetainingSeqNo > best.RetainingSeqNo ||
			(le.RetainingSeqNo == best.RetainingSeqNo && le.ID < best.ID) {
			best, l.ProtectedBy = le, le.ID
		}
	}
	return l
}

// describeCommon adds the lines every plan shares: reuse, ops, lease.
func (v *view) describeCommon(c *candidate) {
	p := c.plan
	if len(p.Reused) > 0 && p.Kind != KindOpsOnly {
		c.desc = append(c.desc, fmt.Sprintf("reuse %s (%s) already identical on the target", files(len(p.Reused)), human(p.BytesReused)))
	} else if len(v.tgt) > 0 && p.Kind != KindOpsOnly {
		c.desc = append(c.desc, "no file on the target is identical to one of the file set: nothing reused")
	}
	if p.Ops.Empty() {
		c.desc = append(c.desc, fmt.Sprintf("no op to replay: the file set is at the source's max seqno %v", v.srcMax))
	} else {
		c.desc = append(c.desc, fmt.Sprintf("replay ops %s (%d ops, ~%s) from the source", fmtRange(p.Ops), p.Ops.Len(), human(p.OpsBytes)))
	}
	line := fmt.Sprintf("the source holds a retention lease from seqno %v while the recovery runs", p.Lease.RetainingSeqNo)
	if p.Lease.ProtectedBy != "" {
		line += fmt.Sprintf("; its lease %s already protects these ops", p.Lease.ProtectedBy)
	} else if !p.Ops.Empty() {
		line += "; no lease protects these ops yet: if they are discarded before it is taken, the recovery re-plans"
	}
	c.desc = append(c.desc, line)
}

// divergent says why a copy's commit c must not be continued with the
// source's ops, or "" when it may. A commit holding ops above its global
// checkpoint of an older primary term than the source's (as its
// MaxTermAboveGlobalCheckpoint says; never its own PrimaryTerm, which says
// nothing of the ops it holds) may hold ops the primary that took over
// never had, or other ops under the same seqnos: replaying from its
// checkpoint would leave the copies silently different. Elasticsearch
// rolls such a copy back to its global checkpoint; here its files are not
// continued, a file-based plan copies the source's.
func (v *view) divergent(c shardstore.CommitData) string {
	term := v.sourceTerm()
	if c.MaxSeqNo <= c.GlobalCheckpoint || c.MaxTermAboveGlobalCheckpoint >= term {
		return ""
	}
	return fmt.Sprintf("holds ops %v..%v above its global checkpoint %v of primary terms up to %d, older than the source's term %d: the new primary may not have them, or gave their seqnos to other ops",
		c.GlobalCheckpoint+1, c.MaxSeqNo, c.GlobalCheckpoint, c.MaxTermAboveGlobalCheckpoint, term)
}

// sourceTerm is the newest primary term the source's commit knows: its own,
// or that of the ops it holds above its global checkpoint.
func (v *view) sourceTerm() uint64 {
	return max(v.srcCommit.PrimaryTerm, v.srcCommit.MaxTermAboveGlobalCheckpoint)
}

// opsOnly returns the ops-only candidate, or why there is none.
func (v *view) opsOnly() (*candidate, string) {
	const no = "ops-only not possible: "
	if !v.tgtHasData {
		return nil, no + "the target has no commit to continue"
	}
	t, src := v.tgtData, v.srcCommit
	if t.HistoryUUID != src.HistoryUUID {
		return nil, fmt.Sprintf(no+"target history %s differs from the source's %s: their ops must never be mixed", t.HistoryUUID, src.HistoryUUID)
	}
	if t.LocalCheckpoint > v.srcMax || t.MaxSeqNo > v.srcMax {
		return nil, fmt.Sprintf(no+"the target holds ops up to %v, past the source's max seqno %v", t.MaxSeqNo, v.srcMax)
	}
	if why := v.divergent(t); why != "" {
		return nil, no + "the target " + why
	}
	need := v.opsRange(t.LocalCheckpoint)
	if why := v.notRetained(need); why != "" {
		return nil, fmt.Sprintf(no+"the target's checkpoint is %v and %s", t.LocalCheckpoint, why)
	}
	// A copy: the plan must not alias the caller's input.
	reused := append(make([]shardstore.FileMeta, 0, len(v.tgt)), v.tgt...)
	s := fileSplit{reused: reused, fromSnap: []shardstore.FileMeta{}, fromPeer: []shardstore.FileMeta{}, bytesReused: totalBytes(v.tgt)}
	c := &candidate{plan: v.build(KindOpsOnly, t, s, need), label: "the ops-only plan"}
	c.desc = append(c.desc, fmt.Sprintf("ops-only: the target's commit shares history %s and the source retains every op above its checkpoint %v; no file moves", t.HistoryUUID, t.LocalCheckpoint))
	v.describeCommon(c)
	return c, ""
}

// peer returns the peer candidate, or why there is none (then no
// file-based plan is possible at all).
func (v *view) peer() (*candidate, string) {
	need := v.opsRange(v.srcCommit.LocalCheckpoint)
	if why := v.notRetained(need); why != "" {
		return nil, fmt.Sprintf("refused: the source's commit is at checkpoint %v and %s: no copy can be brought up to date; a flush on the source (a new commit) makes a file copy possible again", v.srcCommit.LocalCheckpoint, why)
	}
	s := splitFiles(v.src, v.tgt, nil, false)
	c := &candidate{plan: v.build(KindPeer, v.srcCommit, s, need), label: "the peer plan"}
	if len(s.fromPeer) == 0 {
		c.desc = append(c.desc, "peer: every file of the source's commit is already on the target")
	} else {
		c.desc = append(c.desc, fmt.Sprintf("peer: copy %s (%s) of the source's commit from the source", files(len(s.fromPeer)), human(s.bytes)))
	}
	v.describeCommon(c)
	return c, ""
}

// hybrid returns the hybrid candidate, or why there is none.
func (v *view) hybrid() (*candidate, string) {
	s := splitFiles(v.src, v.tgt, v.snap, false)
	if len(s.fromSnap) == 0 {
		return nil, fmt.Sprintf("hybrid not possible: no file the target needs is the same in snapshot %s", v.snapID)
	}
	need := v.opsRange(v.srcCommit.LocalCheckpoint)
	c := &candidate{plan: v.build(KindHybrid, v.srcCommit, s, need), label: "the hybrid plan with snapshot " + v.snapID}
	c.desc = append(c.desc, fmt.Sprintf("hybrid: of the source's commit, %s (%s) the same in snapshot %s from the repository, %s (%s) from the source",
		files(len(s.fromSnap)), human(s.bytesSnap), v.snapID, files(len(s.fromPeer)), human(s.bytes)))
	v.describeCommon(c)
	return c, ""
}

// snapshot returns the candidate that restores the snapshot's commit and
// replays the ops above it, or why there is none.
func (v *view) snapshot(peer *candidate) (*candidate, string) {
	sc, cc, id := v.snapCommit, v.srcCommit, v.snapID
	if sc.HistoryUUID != cc.HistoryUUID {
		return nil, fmt.Sprintf("snapshot %s is of another history (%s, the source's is %s): its commit cannot be restored, only its files the same as the source's can be used", id, sc.HistoryUUID, cc.HistoryUUID)
	}
	if why := v.divergent(sc); why != "" {
		return nil, fmt.Sprintf("snapshot %s's commit cannot be restored: the snapshot %s", id, why)
	}
	if sc.MaxSeqNo > cc.MaxSeqNo {
		return nil, fmt.Sprintf("snapshot %s is ahead of the source commit (max seqno %v > %v): its commit cannot be restored", id, sc.MaxSeqNo, cc.MaxSeqNo)
	}
	equivalent := sc.MaxSeqNo == cc.MaxSeqNo && sc.MaxSeqNo == sc.LocalCheckpoint && cc.MaxSeqNo == cc.LocalCheckpoint
	need := v.opsRange(sc.LocalCheckpoint)
	if why := v.notRetained(need); why != "" {
		return nil, fmt.Sprintf("snapshot %s + ops not possible: the snapshot's checkpoint is %v and %s%s", id, sc.LocalCheckpoint, why, v.snapshotLeaseStopped(need.From))
	}
	s := splitFiles(v.snap, v.tgt, nil, true)
	c := &candidate{plan: v.build(KindSnapshot, sc, s, need), label: "the snapshot " + id + " plan"}
	if equivalent {
		c.desc = append(c.desc, fmt.Sprintf("snapshot %s is logically equivalent to the source commit: history %s, max seqno %v = local checkpoint in both", id, sc.HistoryUUID, sc.MaxSeqNo))
	} else {
		if c.plan.BytesFromSource >= peer.plan.BytesFromSource {
			return nil, fmt.Sprintf("snapshot %s + ops not chosen: it is behind the source commit (checkpoint %v, source commit %v) and would read %s off the source (ops %s), not less than the peer plan's %s",
				id, sc.LocalCheckpoint, cc.LocalCheckpoint, human(c.plan.BytesFromSource), fmtRange(need), human(peer.plan.BytesFromSource))
		}
		c.desc = append(c.desc, fmt.Sprintf("snapshot %s is behind the source commit (checkpoint %v, source commit %v) but the source retains every op above it, and it reads %s off the source against %s for the peer plan",
			id, sc.LocalCheckpoint, cc.LocalCheckpoint, human(c.plan.BytesFromSource), human(peer.plan.BytesFromSource)))
	}
	if len(s.fromSnap) == 0 {
		c.desc = append(c.desc, fmt.Sprintf("snapshot: publish snapshot %s's commit (checkpoint %v); every one of its files is already on the target, nothing is downloaded", id, sc.LocalCheckpoint))
	} else {
		c.desc = append(c.desc, fmt.Sprintf("snapshot: restore snapshot %s's commit (checkpoint %v): %s (%s) from the repository", id, sc.LocalCheckpoint, files(len(s.fromSnap)), human(s.bytesSnap)))
	}
	v.describeCommon(c)
	return c, ""
}
