package main

import (
	"math"

	"github.com/recoverd/recoverd/planner"
)

// Snapshot downloads follow recovery/download.go and snapshot/download.go:
// a recovery queues every snapshot file of its plan on its node's
// --max-snapshot-downloads semaphore (FIFO across recoveries); a file
// holding a place is a HEAD (Stat: the blob's length), then its ranged
// GETs of PartSize, PartConcurrency at once, each retried on 503 SlowDown
// with backoff until RetryBudget passes without progress. A download that
// fails because of the repository stops every download of its recovery:
// a snapshot plan falls back to its peer plan (what it staged is
// dropped), a hybrid plan hands every file not downloaded yet to the
// source in one more FetchFiles call.

type dlEntry struct {
	rec, file, attempt int32
}

type dlSlot struct {
	group                      int32 // its GET streams
	busy                       bool
	gen                        int32
	rec, file                  int32
	size                       int64
	parts, nextPart, partsDone int32
	tries                      int32
	reqStart                   float64
	bytes                      float64 // staged so far
	lanes                      []int32
}

// startDownloads gives free download places to queued files.
func (e *engine) startDownloads(node int32, t float64) {
	nd := &e.nodes[node]
	for i := range nd.dl {
		if nd.dlHead >= len(nd.dlQueue) {
			break
		}
		if nd.dl[i].busy {
			continue
		}
		for nd.dlHead < len(nd.dlQueue) {
			q := nd.dlQueue[nd.dlHead]
			nd.dlHead++
			r := &e.recs[q.rec]
			if q.attempt != r.attempt || r.f.stopped || r.state != stFiles || int(q.file) >= len(r.f.snapSt) || r.f.snapSt[q.file] != fileQueued {
				continue // its recovery stopped downloading
			}
			s := &nd.dl[i]
			size := r.plan.snap[q.file]
			s.busy, s.gen, s.rec, s.file, s.size = true, s.gen+1, q.rec, q.file, size
			s.parts = int32(math.Ceil(float64(size) / float64(e.cfg.PartSize)))
			s.nextPart, s.partsDone, s.tries, s.reqStart, s.bytes = 0, 0, 0, t, 0
			s.lanes = s.lanes[:0]
			r.f.snapSt[q.file] = fileLoading
			if e.cfg.S3PrefixBandwidth > 0 {
				g := &e.groups[s.group]
				g.res[g.nres-1] = e.prefixRes(e.st.prefixOf[blobs][r.l.shard])
			}
			nd.dlBusy++
			e.headRequest(node, int32(i), s.gen, t)
			break
		}
	}
	if nd.dlHead > 4096 && nd.dlHead*2 > len(nd.dlQueue) {
		nd.dlQueue = append(nd.dlQueue[:0], nd.dlQueue[nd.dlHead:]...)
		nd.dlHead = 0
	}
}

func (e *engine) slotOf(node, slot, gen int32) *dlSlot {
	s := &e.nodes[node].dl[slot]
	if !s.busy || s.gen != gen {
		return nil
	}
	return s
}

// headRequest issues the HEAD of a download (snapshot.Downloader's Stat).
func (e *engine) headRequest(node, slot, gen int32, t float64) {
	s := e.slotOf(node, slot, gen)
	if s == nil {
		return
	}
	if e.st.request(max(t, e.now), e.recs[s.rec].l.shard, blobs, reqHead) {
		e.at(t+e.cfg.S3Latency, evHeadDone, node, slot, gen)
		return
	}
	s.tries++
	d := backoff(e.cfg, int(s.tries), e.rng.Float64())
	if t-s.reqStart+d > e.cfg.RetryBudget {
		e.repositoryFailed(s.rec, t)
		return
	}
	e.at(t+d, evHead, node, slot, gen)
}

// headAnswered starts the part streams.
func (e *engine) headAnswered(node, slot, gen int32, t float64) {
	s := e.slotOf(node, slot, gen)
	if s == nil {
		return
	}
	rec := s.rec
	n := min(int32(e.cfg.PartConcurrency), s.parts)
	for range n {
		l := e.addLane(e.nodes[node].dl[slot].group, lane{rec: rec, kind: lanePart, node: node, slot: slot, gen: gen})
		s = &e.nodes[node].dl[slot]
		s.lanes = append(s.lanes, l)
		e.nextPart(l, t)
	}
}

// nextPart gives a part lane the file's next part (a GET to issue), or
// ends it.
func (e *engine) nextPart(l int32, t float64) {
	ln := &e.lanes[l]
	s := &e.nodes[ln.node].dl[ln.slot]
	if s.nextPart >= s.parts {
		ln.on = false
		return
	}
	p := int64(s.nextPart)
	s.nextPart++
	ln.rem = float64(min(e.cfg.PartSize, s.size-p*e.cfg.PartSize))
	ln.pending, ln.ready, ln.tries, ln.reqStart = true, t, 0, t
}

// issue sends a part lane's GET at time t.
func (e *engine) issue(l int32, t float64) {
	ln := &e.lanes[l]
	if e.st.request(t, e.recs[ln.rec].l.shard, blobs, reqGet) {
		ln.pending = false
		ln.ready = t + e.cfg.S3Latency
		return
	}
	ln.tries++
	d := backoff(e.cfg, int(ln.tries), e.rng.Float64())
	if t-ln.reqStart+d > e.cfg.RetryBudget {
		e.repositoryFailed(ln.rec, t)
		return
	}
	ln.ready = t + d
}

// moved accounts b bytes a lane moved.
func (e *engine) moved(l int32, b float64) {
	ln := &e.lanes[l]
	r := &e.recs[ln.rec]
	switch ln.kind {
	case lanePeer:
		r.f.bytesPeer += b
		r.f.stagedFiles += b
		e.res.BytesPeer += b
		if e.tl != nil {
			e.tl.peer += b
		}
	case laneOps:
		r.f.bytesOps += b
		r.f.stagedOps += b
		e.res.BytesOps += b
	case lanePart:
		r.f.bytesRepo += b
		r.f.stagedFiles += b
		e.nodes[ln.node].dl[ln.slot].bytes += b
		e.res.BytesRepo += b
		if e.tl != nil {
			e.tl.repo += b
		}
	}
}

// itemDone: a lane finished its item at t.
func (e *engine) itemDone(l int32, t float64) {
	ln := &e.lanes[l]
	id := ln.rec
	r := &e.recs[id]
	switch ln.kind {
	case lanePeer:
		r.f.peerLeft--
		e.nextPeerFile(l, t)
		e.maybeFilesDone(id, t)
	case laneOps:
		ln.on = false
		r.f.peerLeft--
		e.maybeFilesDone(id, t)
	case laneDigest:
		ln.on = false
		if r.digest--; r.digest == 0 {
			e.done(id, t)
		}
	case lanePart:
		node, slot := ln.node, ln.slot
		s := &e.nodes[node].dl[slot]
		s.partsDone++
		e.nextPart(l, t)
		if s.partsDone == s.parts {
			// Verified (length and CRC32C): the file is staged.
			r.f.snapSt[s.file] = fileDone
			r.f.snapLeft--
			e.freeSlot(node, slot, t)
			e.maybeFilesDone(id, t)
		}
	}
}

func (e *engine) freeSlot(node, slot int32, t float64) {
	nd := &e.nodes[node]
	s := &nd.dl[slot]
	for _, l := range s.lanes {
		if e.lanes[l].on && e.lanes[l].node == node && e.lanes[l].slot == slot && e.lanes[l].gen == s.gen {
			e.lanes[l].on = false
		}
	}
	s.busy = false
	s.lanes = s.lanes[:0]
	nd.dlBusy--
	e.startDownloads(node, t)
}

// repositoryFailed: a download of recovery id gave up on the repository
// (SlowDown past the retry budget). Every download of the recovery stops
// (in flight ones are cancelled, their staged bytes dropped).
func (e *engine) repositoryFailed(id int32, t float64) {
	r := &e.recs[id]
	if r.f.stopped {
		return
	}
	r.f.stopped = true
	nd := &e.nodes[r.l.target]
	for i := range nd.dl {
		s := &nd.dl[i]
		if s.busy && s.rec == id {
			r.f.wastedFiles += s.bytes
			r.f.stagedFiles -= s.bytes
			r.f.snapSt[s.file] = fileQueued // not downloaded
			e.freeSlot(r.l.target, int32(i), t)
		}
	}
	if r.plan.kind == planner.KindHybrid {
		// Every file not downloaded yet goes to the source, in one call.
		var rest []int64
		for i, st := range r.f.snapSt {
			if st == fileQueued {
				r.f.snapSt[i] = fileHanded
				rest = append(rest, r.plan.snap[i])
			}
		}
		e.res.Handoffs++
		r.f.snapLeft = 0
		sortDesc(rest)
		r.f.lists[1], r.f.next[1] = rest, 0
		r.f.peerLeft += int32(len(rest))
		e.openPeer(id, 1, t)
		e.maybeFilesDone(id, t)
		return
	}
	// A snapshot plan fails whole: its op stream is cancelled, the
	// staging dropped, and the peer plan runs after the pin is renewed.
	e.res.Fallbacks++
	g := r.group
	if g >= 0 {
		for _, l := range e.groups[g].lanes {
			if e.lanes[l].rec == id {
				e.lanes[l].on = false
			}
		}
	}
	r.f.wastedFiles += r.f.stagedFiles
	r.f.wastedOps += r.f.stagedOps
	r.f.stagedFiles, r.f.stagedOps = 0, 0
	r.state = stPlanning
	e.at(t+e.cfg.RPCLatency, evFallback, id, 0, r.attempt)
}

// fallback runs a failed snapshot plan's peer plan.
func (e *engine) fallback(id int32, t float64) {
	r := &e.recs[id]
	r.plan = r.plan.fallback
	e.startFiles(id, t)
}

func sortDesc(s []int64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] > s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
