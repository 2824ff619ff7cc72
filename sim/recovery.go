package main

import (
	"github.com/recoverd/recoverd/planner"
)

// A recovery follows recovery.Manager (recovery/manager.go, slot.go,
// run.go, attempt.go, download.go): it waits in its target's queue for one of
// --max-recoveries slots (FIFO, as goroutines blocked on the slots
// channel); holding one, it pins its source's commit, and when the source
// is at --max-outgoing it gives the slot back, sleeps (200ms doubling up
// to 5s) and queues again, failing once it has waited --pin-wait for the
// source since the first refusal: the refused asks and the sleeps count,
// the time queued for a slot does not. Pinned, it asks the repository for the shard's latest
// snapshot (snapshot.Latest: LIST the manifests, GET the newest), plans
// with the real planner, takes its lease, and moves files: peer files
// --parallel-files at a time, largest first; snapshot files through the
// node-wide --max-snapshot-downloads queue; ops alongside. Then it
// publishes, catches up, and checks (one call; content digests on both
// nodes with --verify-digest always). The pin and the slot are held to the
// end. A recovery that fails is started again by the orchestrator after
// -reissue.

type recState uint8

const (
	stNew       recState = iota
	stQueued             // waiting for a slot, first time
	stInit               // slot held, asking the source
	stSleeping           // source at its pin limit: no slot, sleeping
	stQueuedPin          // waiting for a slot after a refusal
	stPlanning
	stFiles
	stCheck
	stDone
)

type recovery struct {
	l        lostCopy
	attempt  int32
	group    int32 // its peer and op streams
	tries    int32
	state    recState
	planStep uint8 // 0: LIST the manifests, 1: GET the newest
	hasSlot  bool
	hasPin   bool
	digest   int8
	failedAt float64 // when its failure happened
	reqStart float64
	pinWait  float64 // waited for the source since its first refusal; -1 before
	pinBack  float64
	plan     *planned // shared with the plan cache: read only
	f        *files   // while it moves files
}

// files is a recovery's files stage, kept apart: few recoveries are in
// it at once.
type files struct {
	lists    [2][]int64 // peer files by FetchFiles call: the plan's, the handed over
	next     [2]int32
	peerLeft int32   // peer files and op streams not done
	snapLeft int32   // snapshot files not done
	snapSt   []uint8 // per snapshot file: fileQueued, fileLoading, fileDone, fileHanded
	stopped  bool    // its snapshot side stopped (the repository failed)

	bytesPeer, bytesRepo, bytesOps float64
	wastedFiles, wastedOps         float64
	stagedFiles, stagedOps         float64
}

const (
	fileQueued uint8 = iota
	fileLoading
	fileDone
	fileHanded
)

func (e *engine) submit(id int32, t float64) {
	r := &e.recs[id]
	if r.attempt == 0 {
		e.submitted++
	}
	r.state = stQueued
	r.pinWait, r.pinBack = -1, 0.2
	r.group = -1
	e.enqueue(id, t)
}

// enqueue puts a recovery at the back of its target's slot queue.
func (e *engine) enqueue(id int32, t float64) {
	node := e.recs[id].l.target
	e.wake(node, t)
	e.nodes[node].queue.push(id)
	e.fillSlots(node, t)
}

// wake queues the node's sleepers whose sleep has ended by t.
func (e *engine) wake(node int32, t float64) {
	nd := &e.nodes[node]
	for len(nd.sleepers) > 0 && nd.sleepers[0].t <= t {
		sl := nd.sleepers.pop()
		e.recs[sl.id].state = stQueuedPin
		nd.queue.push(sl.id)
	}
}

// fillSlots hands free slots to queued recoveries, in order. A recovery
// new to the slot first asks the source about the shard and opens its
// target (two calls); one back from a refused pin asks for the pin again
// at once (one call, made here: its answer is known now).
func (e *engine) fillSlots(node int32, t float64) {
	e.wake(node, t)
	nd := &e.nodes[node]
	defer e.wakeLater(node)
	for nd.slots < int32(e.cfg.MaxRecoveries) && nd.queue.len() > 0 {
		id := nd.queue.pop()
		r := &e.recs[id]
		nd.slots++
		r.hasSlot = true
		first := r.state == stQueued
		r.state = stInit
		if first {
			e.at(t+2*e.cfg.RPCLatency, evInit, id, 0, r.attempt)
		} else {
			e.pin(id, t+e.cfg.RPCLatency, false)
		}
	}
}

// wakeLater sets a wake event for the first sleeper when the node has a
// free slot and nothing queued for it.
func (e *engine) wakeLater(node int32) {
	nd := &e.nodes[node]
	if nd.slots >= int32(e.cfg.MaxRecoveries) || nd.queue.len() > 0 || len(nd.sleepers) == 0 {
		return
	}
	if t := nd.sleepers[0].t; nd.wakeAt < 0 || t < nd.wakeAt {
		nd.wakeAt = t
		e.at(t, evWake, node, 0, 0)
	}
}

func (e *engine) releaseSlot(id int32, t float64) {
	r := &e.recs[id]
	if r.hasSlot {
		r.hasSlot = false
		e.nodes[r.l.target].slots--
		e.fillSlots(r.l.target, t)
	}
}

// tryPin asks the source for a commit pin.
func (e *engine) tryPin(id int32, t float64) { e.pin(id, t, true) }

// pin asks the source for a commit pin (transfer.PinCommit), as
// recovery.attempt.pinSource: granted under --max-outgoing, else the
// recovery gives its slot back (refill: and the slot goes to the next
// queued) and sleeps.
func (e *engine) pin(id int32, t float64, refill bool) {
	r := &e.recs[id]
	src := &e.nodes[r.l.source]
	if src.pins < int32(e.cfg.MaxOutgoing) {
		src.pins++
		r.hasPin = true
		e.startPlanning(id, t)
		return
	}
	e.res.PinRefusals++
	if r.pinWait < 0 {
		r.pinWait = 0
	} else {
		r.pinWait += e.cfg.RPCLatency // the refused ask
	}
	// The slot goes back either way.
	r.hasSlot = false
	e.nodes[r.l.target].slots--
	if r.pinWait >= e.cfg.PinWait {
		e.fail(id, t)
	} else {
		r.state = stSleeping
		e.seq++
		back := r.pinBack
		if j := e.cfg.PinJitter; j > 0 {
			back *= 1 - j + 2*j*e.rng.Float64()
		}
		sleep := min(back, e.cfg.PinWait-r.pinWait)
		r.pinWait += sleep
		e.nodes[r.l.target].sleepers.push(sleeper{t: t + sleep, seq: e.seq, id: id})
		r.pinBack = min(2*r.pinBack, 5)
	}
	if refill {
		e.fillSlots(r.l.target, t)
	} else {
		e.wakeLater(r.l.target)
	}
}

// fail ends an attempt that failed (the pin wait ran out): the
// orchestrator starts the recovery again later.
func (e *engine) fail(id int32, t float64) {
	r := &e.recs[id]
	e.res.PinWaitFailures++
	r.attempt++
	r.state = stNew
	e.at(t+e.cfg.Reissue, evSubmit, id, 0, r.attempt)
}

// startPlanning gathers the planner's input: the repository's latest
// snapshot of the shard (snapshot.Latest) unless snapshots are off.
func (e *engine) startPlanning(id int32, t float64) {
	r := &e.recs[id]
	r.state = stPlanning
	if !e.cfg.UseSnapshots {
		e.makePlan(id, t, planner.SnapshotNone)
		return
	}
	r.planStep, r.tries, r.reqStart = 0, 0, t
	e.planRequest(id, t)
}

func (e *engine) planRequest(id int32, t float64) {
	r := &e.recs[id]
	kind := reqList
	if r.planStep == 1 {
		kind = reqGet
	}
	if e.st.request(max(t, e.now), r.l.shard, manifests, kind) {
		e.at(t+e.cfg.S3Latency, evPlanDone, id, 0, r.attempt)
		return
	}
	r.tries++
	d := backoff(e.cfg, int(r.tries), e.rng.Float64())
	if t-r.reqStart+d > e.cfg.RetryBudget {
		// snapshot.Latest fails: the repository is unavailable, the
		// planner goes to the peer.
		e.res.PlanUnavailable++
		e.makePlan(id, t, planner.SnapshotUnavailable)
		return
	}
	e.at(t+d, evPlanReq, id, 0, r.attempt)
}

func (e *engine) planAnswered(id int32, t float64) {
	r := &e.recs[id]
	if r.planStep == 0 && e.cl.snap[r.l.shard] {
		r.planStep, r.tries, r.reqStart = 1, 0, t
		e.planRequest(id, t)
		return
	}
	e.makePlan(id, t, planner.SnapshotAvailable) // no manifest listed: SnapshotNone
}

func (e *engine) makePlan(id int32, t float64, state planner.SnapshotState) {
	r := &e.recs[id]
	p, err := e.model.plan(e.cl, r.l, state)
	if err != nil {
		e.violate("%v", err)
		e.res.Done = true
		return
	}
	r.plan = p
	if r.f == nil {
		r.f = &files{}
	}
	e.res.Plans[kindIndex(p.kind)]++
	e.at(t+e.cfg.RPCLatency, evLease, id, 0, r.attempt) // take the retention lease
}

// peerGroup is the recovery's streams from its source: both nodes'
// throttles and NICs carry the wire bytes, both disks the raw bytes.
func (e *engine) peerGroup(id int32) int32 {
	r := &e.recs[id]
	if r.group < 0 {
		s, d := r.l.source, r.l.target
		w := e.cfg.PeerWireRatio
		r.group = e.newGroup([2]int32{s, d}, 0,
			[]int32{e.resID(s, resThrottle), e.resID(s, resNICOut), e.resID(s, resDisk), e.resID(d, resThrottle), e.resID(d, resNICIn), e.resID(d, resDisk)},
			[]float64{w, w, 1, w, w, 1})
	}
	return r.group
}

// startFiles runs the files stage of the current plan.
func (e *engine) startFiles(id int32, t float64) {
	r := &e.recs[id]
	r.state = stFiles
	p := r.plan
	r.f.lists = [2][]int64{p.peer, nil}
	r.f.next = [2]int32{}
	r.f.peerLeft = int32(len(p.peer))
	r.f.snapLeft = int32(len(p.snap))
	r.f.snapSt = make([]uint8, len(p.snap))
	r.f.stopped = false
	e.openPeer(id, 0, t)
	if p.opsBytes > 0 {
		r.f.peerLeft++
		e.addLane(e.peerGroup(id), lane{rec: id, kind: laneOps, rem: float64(p.opsBytes), ready: t + e.cfg.RPCLatency})
	}
	nd := &e.nodes[r.l.target]
	for i := range p.snap {
		nd.dlQueue = append(nd.dlQueue, dlEntry{rec: id, file: int32(i), attempt: r.attempt})
	}
	e.startDownloads(r.l.target, t)
	e.maybeFilesDone(id, t)
}

// openPeer starts the streams of one FetchFiles call: --parallel-files
// files at once from its list.
func (e *engine) openPeer(id int32, call uint8, t float64) {
	r := &e.recs[id]
	n := min(e.cfg.ParallelFiles, len(r.f.lists[call]))
	for range n {
		l := e.addLane(e.peerGroup(id), lane{rec: id, kind: lanePeer, call: call})
		e.nextPeerFile(l, t)
	}
}

// nextPeerFile gives a peer lane its call's next file, or ends it.
func (e *engine) nextPeerFile(l int32, t float64) {
	ln := &e.lanes[l]
	r := &e.recs[ln.rec]
	c := ln.call
	if int(r.f.next[c]) >= len(r.f.lists[c]) {
		ln.on = false
		return
	}
	ln.rem = float64(r.f.lists[c][r.f.next[c]])
	ln.ready = t + e.cfg.RPCLatency // the file's stream opens
	r.f.next[c]++
}

func (e *engine) maybeFilesDone(id int32, t float64) {
	r := &e.recs[id]
	if r.state == stFiles && r.f.peerLeft == 0 && r.f.snapLeft == 0 {
		r.state = stCheck
		e.at(t+e.cfg.Overhead, evFinalize, id, 0, r.attempt) // verify, publish, catch up
	}
}

// check ends the recovery with the source comparison: with
// --verify-digest always, content digests read the whole shard on both
// nodes; auto (the streamed check: what moved was hashed as it streamed)
// and never take one call.
func (e *engine) check(id int32, t float64) {
	r := &e.recs[id]
	if e.cfg.VerifyDigest != "always" {
		e.at(t+e.cfg.RPCLatency, evCheckDone, id, 0, r.attempt)
		return
	}
	r.digest = 2
	size := float64(r.plan.shardSize)
	for _, n := range []int32{r.l.source, r.l.target} {
		e.addLane(e.nodes[n].dgGroup, lane{rec: id, kind: laneDigest, rem: size, ready: t + e.cfg.RPCLatency})
	}
}

// done: the copy is rebuilt; pin and slot are given back.
func (e *engine) done(id int32, t float64) {
	r := &e.recs[id]
	r.state = stDone
	if r.hasPin {
		r.hasPin = false
		e.nodes[r.l.source].pins--
	}
	e.release(r.group)
	r.group = -1
	e.releaseSlot(id, t)
	e.cl.rebuilt(r.l)
	e.res.Done_ = append(e.res.Done_, t-r.failedAt)
	e.res.conserve(r)
	r.f = nil
	if e.pendingCopies--; e.pendingCopies == 0 {
		e.failureDone(t)
	}
}

func kindIndex(k planner.Kind) int {
	for i, n := range planKinds {
		if n == k {
			return i
		}
	}
	return 0
}

var planKinds = []planner.Kind{planner.KindPeer, planner.KindHybrid, planner.KindSnapshot, planner.KindOpsOnly}
