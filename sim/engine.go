package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// evKind is what a control event does.
type evKind uint8

const (
	evFailure   evKind = iota // a failure event starts: its recoveries are submitted
	evSubmit                  // a recovery (or its re-issue) joins its target's queue
	evInit                    // slot held, source asked about the shard: pin it
	evWake                    // a node with a free slot: sleepers wake and queue
	evPlanReq                 // a planning request to the store (re)issued
	evPlanDone                // a planning request answered
	evLease                   // plan made, lease taken: move files
	evHead                    // a snapshot file's HEAD (re)issued
	evHeadDone                // HEAD answered: GET the parts
	evFallback                // a failed snapshot plan falls back to its peer plan
	evFinalize                // files published, ops caught up: check
	evCheckDone               // check without digests answered
)

// nodeState is one node's recoverd: its slots, pins, downloads.
type nodeState struct {
	slots int32 // recoveries holding a --max-recoveries slot
	queue fifo  // recoveries waiting for one, in order
	// sleepers were refused a pin and sleep before queueing again; they
	// join the queue, in wake order, whenever it is used (no event each),
	// and a wake event is set only when a slot is free and none queued.
	sleepers sleepHeap
	wakeAt   float64
	pins     int32 // commit pins granted as a source (--max-outgoing)
	dlQueue  []dlEntry
	dlHead   int
	dl       []dlSlot // --max-snapshot-downloads
	dlBusy   int32
	dgGroup  int32 // the digest scans of this node
}

// engine runs one scenario.
type engine struct {
	cfg   *Config
	cl    *cluster
	model *shardModel
	st    *store
	rng   *rand.Rand

	now  float64 // start of the current step
	k    int64   // the current step
	step int64   // allocations made
	seq  uint64
	q    evQueue

	nodes []nodeState
	recs  []recovery

	groups     []group
	freeGroups []int32
	live, act  []int32
	lanes      []lane
	freeLanes  []int32
	caps       []float64
	w, used    []float64
	touched    []int32

	failures       []failure
	nextFailure    int
	pendingCopies  int // of the current failure event
	failureStart   float64
	busy           []float64
	busyStep       []int64
	throttleUsed   []float64
	deadNode       []bool // failed in any event and not back
	res            Result
	submitted      int
	tl             *timeline
	getStreams     int
	violationCount int
}

func (e *engine) at(t float64, kind evKind, a, b, gen int32) {
	e.seq++
	e.q.push(event{t: t, seq: e.seq, kind: kind, a: a, b: b, gen: gen})
}

func (e *engine) violate(format string, args ...any) {
	e.violationCount++
	if len(e.res.Violations) < 20 {
		e.res.Violations = append(e.res.Violations, fmt.Sprintf("t=%.3fs: ", e.now)+fmt.Sprintf(format, args...))
	}
}

func newEngine(cfg *Config) (*engine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cl, err := newCluster(cfg)
	if err != nil {
		return nil, err
	}
	e := &engine{cfg: cfg, cl: cl, model: newShardModel(cfg), rng: rand.New(rand.NewPCG(cfg.Seed, 0xfa11))}
	e.q.dt = cfg.DT
	e.st = newStore(cfg, cl)
	if e.failures, err = cl.parseFailures(cfg.Fail, e.rng); err != nil {
		return nil, err
	}
	n := cfg.Nodes
	nres := n*resPerNode + 1
	if cfg.S3PrefixBandwidth > 0 {
		nres += e.st.prefixes
	}
	e.caps = make([]float64, nres)
	e.w = make([]float64, nres)
	e.used = make([]float64, nres)
	for i := range n {
		e.caps[i*resPerNode+resThrottle] = cfg.Throttle
		e.caps[i*resPerNode+resNICIn] = cfg.NIC
		e.caps[i*resPerNode+resNICOut] = cfg.NIC
		e.caps[i*resPerNode+resDisk] = cfg.Disk
	}
	e.caps[e.s3Res()] = cfg.S3Bandwidth
	for p := int32(0); cfg.S3PrefixBandwidth > 0 && int(p) < e.st.prefixes; p++ {
		e.caps[e.prefixRes(p)] = cfg.S3PrefixBandwidth
	}
	e.nodes = make([]nodeState, n)
	e.busy = make([]float64, n)
	e.busyStep = make([]int64, n)
	e.throttleUsed = make([]float64, n)
	e.deadNode = make([]bool, n)
	for i := range e.nodes {
		nd := &e.nodes[i]
		nd.dl = make([]dlSlot, cfg.MaxSnapshotDownloads)
		nd.wakeAt = -1
		id := int32(i)
		for i := range nd.dl {
			// The GET streams of one download place; with a per-prefix
			// bandwidth its last resource is the file's prefix.
			res := []int32{e.resID(id, resThrottle), e.resID(id, resNICIn), e.resID(id, resDisk), e.s3Res()}
			if cfg.S3PrefixBandwidth > 0 {
				res = append(res, e.prefixRes(0))
			}
			nd.dl[i].group = e.newGroup([2]int32{id, -1}, cfg.S3StreamRate, res, []float64{1, 1, 1, 1, 1})
			e.groups[nd.dl[i].group].gets = true
		}
		scan := 0.0
		if cfg.Disk == 0 {
			scan = 1e15 // an unbounded disk scans at once
		}
		nd.dgGroup = e.newGroup([2]int32{id, -1}, scan, []int32{e.resID(id, resDisk)}, []float64{1})
	}
	if cfg.Timeline != "" {
		e.tl = &timeline{every: cfg.TimelineEvery}
	}
	e.res.Config = *cfg
	e.res.Prefixes = e.st.prefixes
	e.res.Shards = cl.shards
	var total float64
	for _, b := range cl.size {
		total += float64(b)
	}
	e.res.MeanShard = total / float64(cl.shards)
	e.res.Background = e.st.bg
	if len(e.failures) > 0 {
		e.at(0, evFailure, 0, 0, 0)
	} else {
		e.res.Done = true // -fail none: the background load alone
	}
	return e, nil
}

// simulate runs until every lost copy is rebuilt or MaxTime passes.
func (e *engine) simulate() {
	dt := e.cfg.DT
	for !e.res.Done {
		e.now = float64(e.k) * dt
		if e.now >= e.cfg.MaxTime {
			break
		}
		t1 := float64(e.k+1) * dt
		e.q.advance(e.k)
		for e.q.pending() && !e.res.Done {
			e.handle(e.q.pop())
		}
		if e.res.Done {
			break
		}
		e.allocate(t1)
		e.run(e.now, t1)
		e.audit()
		if e.tl != nil {
			e.tl.sample(e, t1, false)
		}
		e.k++
		// Nothing moving: jump to the next event.
		if len(e.live) == 0 {
			if n := e.q.next(); n > e.k {
				e.k = n
			}
		}
	}
	e.finish()
}

func (e *engine) handle(ev event) {
	switch ev.kind {
	case evFailure:
		e.startFailure(ev.t)
	case evSubmit:
		e.submit(ev.a, ev.t)
	case evInit:
		e.tryPin(ev.a, ev.t)
	case evWake:
		e.nodes[ev.a].wakeAt = -1
		e.fillSlots(ev.a, ev.t)
	case evPlanReq:
		e.planRequest(ev.a, ev.t)
	case evPlanDone:
		e.planAnswered(ev.a, ev.t)
	case evLease:
		e.startFiles(ev.a, ev.t)
	case evHead:
		e.headRequest(ev.a, ev.b, ev.gen, ev.t)
	case evHeadDone:
		e.headAnswered(ev.a, ev.b, ev.gen, ev.t)
	case evFallback:
		e.fallback(ev.a, ev.t)
	case evFinalize:
		e.check(ev.a, ev.t)
	case evCheckDone:
		e.done(ev.a, ev.t)
	}
}

// startFailure loses the next failure event's nodes and submits a
// recovery for every copy they held.
func (e *engine) startFailure(t float64) {
	f := e.failures[e.nextFailure]
	e.nextFailure++
	if e.nextFailure == 1 {
		e.failureStart = t
	}
	lost, unrecoverable := e.cl.fail(f, e.rng)
	for _, n := range f.nodes {
		e.deadNode[n] = true
	}
	ret := e.cfg.Return
	if f.ret != "" {
		ret = f.ret
	}
	if err := e.cl.place(f, lost, ret); err != nil {
		e.violate("%v", err)
		e.res.Done = true
		return
	}
	if ret != "spread" {
		for _, n := range f.nodes {
			e.deadNode[n] = false
		}
	}
	e.res.Failures = append(e.res.Failures, FailureResult{Spec: f.spec, Nodes: len(f.nodes), Lost: len(lost), Unrecoverable: unrecoverable, Start: t})
	e.res.Lost += len(lost)
	e.res.Unrecoverable += unrecoverable
	e.pendingCopies = len(lost)
	e.recs = slices.Grow(e.recs, len(lost))
	e.res.Done_ = slices.Grow(e.res.Done_, len(lost))
	for _, l := range lost {
		e.recs = append(e.recs, recovery{l: l, failedAt: t})
		e.at(t+e.cfg.Detect, evSubmit, int32(len(e.recs)-1), 0, 0)
	}
	if len(lost) == 0 {
		e.failureDone(t)
	}
}

// failureDone ends a failure event: the next one starts.
func (e *engine) failureDone(t float64) {
	fr := &e.res.Failures[len(e.res.Failures)-1]
	fr.Redundant = t - fr.Start
	if e.nextFailure < len(e.failures) {
		e.at(t, evFailure, 0, 0, 0)
		return
	}
	e.res.Done = true
}

// audit checks the node limits hold.
func (e *engine) audit() {
	c := e.cfg
	for i := range e.nodes {
		nd := &e.nodes[i]
		if nd.slots > int32(c.MaxRecoveries) || nd.pins > int32(c.MaxOutgoing) || nd.dlBusy > int32(c.MaxSnapshotDownloads) {
			e.violate("node %d: %d recoveries (max %d), %d pins (max %d), %d downloads (max %d)",
				i, nd.slots, c.MaxRecoveries, nd.pins, c.MaxOutgoing, nd.dlBusy, c.MaxSnapshotDownloads)
		}
	}
	dl := 0
	for i := range e.nodes {
		dl += int(e.nodes[i].dlBusy)
	}
	streams := 0
	for _, id := range e.act {
		if e.groups[id].gets {
			streams += int(e.groups[id].n)
		}
	}
	e.getStreams = streams
	e.res.PeakDownloads = max(e.res.PeakDownloads, dl)
	e.res.PeakGetStreams = max(e.res.PeakGetStreams, streams)
}
