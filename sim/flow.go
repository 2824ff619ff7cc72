package main

import (
	"fmt"
	"math"
)

// Bandwidth is shared by lanes. A lane is one stream of bytes that stays
// open across items: one of a peer transfer's --parallel-files streams,
// one of a snapshot file's ranged GETs, an op stream, a digest scan.
// Lanes with the same resources form a group (the peer streams of one
// recovery, the GET streams of one node, the digest scans of one node),
// and every lane of a group gets the same rate.
//
// Resources are per node: the --throttle bucket (sent and received bytes
// both), the NIC each way, the disk (reads and writes); and the store's
// total bandwidth. Each step the rates are set by progressive filling:
// every lane first gets the smallest equal share of its resources
// (capacity / lanes weighted by use), then, three times over, the spare
// capacity of each resource is handed out the same way. No resource is
// ever given more than its capacity (audited every step).

const (
	resThrottle = iota
	resNICIn
	resNICOut
	resDisk
	resPerNode
)

const fillRounds = 3

type group struct {
	res   [7]int32
	coef  [7]float64
	nres  int8
	cap   float64 // per lane (a GET connection); 0 = none
	nodes [2]int32
	lanes []int32
	n     float64 // lanes counted this step
	x     float64 // bytes/s per lane this step
	live  bool    // in the live list
	owned bool    // held by a recovery or node; freed when false and empty
	gets  bool    // a download place's GET streams
}

type laneKind uint8

const (
	lanePeer laneKind = iota
	laneOps
	lanePart
	laneDigest
)

type lane struct {
	g     int32
	rec   int32
	kind  laneKind
	call  uint8 // peer lanes: which FetchFiles call (0 the plan's, 1 handed over)
	node  int32 // part lanes: node and download slot
	slot  int32
	gen   int32 // part lanes: the slot's generation when the lane was made
	rem   float64
	ready float64 // no byte moves before this (latency, backoff)
	// A request to (re)issue at ready (part lanes).
	pending  bool
	tries    int32
	reqStart float64
	on       bool
}

// resource capacity; 0 = unlimited.
func (e *engine) resID(node int32, kind int) int32 { return node*resPerNode + int32(kind) }

func (e *engine) s3Res() int32 { return int32(e.cfg.Nodes * resPerNode) }

// prefixRes is the bandwidth of one partitioned prefix.
func (e *engine) prefixRes(p int32) int32 { return e.s3Res() + 1 + p }

func (e *engine) newGroup(nodes [2]int32, cap float64, res []int32, coef []float64) int32 {
	var id int32
	if k := len(e.freeGroups); k > 0 {
		id = e.freeGroups[k-1]
		e.freeGroups = e.freeGroups[:k-1]
	} else {
		e.groups = append(e.groups, group{})
		id = int32(len(e.groups) - 1)
	}
	g := &e.groups[id]
	lanes := g.lanes[:0]
	*g = group{nodes: nodes, cap: cap, owned: true, lanes: lanes}
	for i, r := range res {
		if e.caps[r] > 0 {
			g.res[g.nres], g.coef[g.nres] = r, coef[i]
			g.nres++
		}
	}
	if g.nres == 0 && cap == 0 {
		panic(fmt.Sprintf("sim: a group with no bound on its rate (resources %v)", res))
	}
	return id
}

// release gives a group up: it is freed once its lanes are gone.
func (e *engine) release(g int32) {
	if g >= 0 {
		e.groups[g].owned = false
		if !e.groups[g].live && len(e.groups[g].lanes) == 0 {
			e.freeGroups = append(e.freeGroups, g)
		}
	}
}

// addLane starts a lane in group g.
func (e *engine) addLane(g int32, l lane) int32 {
	var id int32
	if k := len(e.freeLanes); k > 0 {
		id = e.freeLanes[k-1]
		e.freeLanes = e.freeLanes[:k-1]
	} else {
		e.lanes = append(e.lanes, lane{})
		id = int32(len(e.lanes) - 1)
	}
	l.g, l.on = g, true
	e.lanes[id] = l
	gr := &e.groups[g]
	gr.lanes = append(gr.lanes, id)
	if !gr.live {
		gr.live = true
		e.live = append(e.live, g)
	}
	return id
}

// allocate sets every live group's per-lane rate for the step ending at
// t1, counting the lanes that can move bytes before t1.
func (e *engine) allocate(t1 float64) {
	for _, r := range e.touched {
		e.w[r], e.used[r] = 0, 0
	}
	e.touched = e.touched[:0]
	e.act = e.act[:0]
	live := e.live[:0]
	for _, id := range e.live {
		g := &e.groups[id]
		lanes := g.lanes[:0]
		n := 0
		for _, l := range g.lanes {
			ln := &e.lanes[l]
			if !ln.on {
				e.freeLanes = append(e.freeLanes, l)
				continue
			}
			lanes = append(lanes, l)
			if ln.ready < t1 {
				n++
			}
		}
		g.lanes = lanes
		if len(lanes) == 0 {
			g.live = false
			if !g.owned {
				e.freeGroups = append(e.freeGroups, id)
			}
			continue
		}
		live = append(live, id)
		g.n, g.x = float64(n), 0
		if n == 0 {
			continue
		}
		e.act = append(e.act, id)
		for i := range g.nres {
			r := g.res[i]
			if e.w[r] == 0 {
				e.touched = append(e.touched, r)
			}
			e.w[r] += g.n * g.coef[i]
		}
	}
	e.live = live
	for _, id := range e.act {
		g := &e.groups[id]
		x := math.Inf(1)
		if g.cap > 0 {
			x = g.cap
		}
		for i := range g.nres {
			r := g.res[i]
			x = min(x, e.caps[r]/e.w[r])
		}
		g.x = x
	}
	for range fillRounds {
		e.sumUsed()
		for _, id := range e.act {
			g := &e.groups[id]
			inc := math.Inf(1)
			if g.cap > 0 {
				inc = g.cap - g.x
			}
			for i := range g.nres {
				r := g.res[i]
				inc = min(inc, max(e.caps[r]-e.used[r], 0)/e.w[r])
			}
			g.x += inc
		}
	}
	e.checkCapacity()
	e.step++
	for _, id := range e.act {
		g := &e.groups[id]
		if g.x <= 0 {
			continue
		}
		for _, n := range g.nodes {
			if n >= 0 && e.busyStep[n] != e.step {
				e.busyStep[n] = e.step
				e.busy[n] += e.cfg.DT
			}
		}
	}
}

// sumUsed sets e.used to what the active groups take of each resource
// touched this step.
func (e *engine) sumUsed() {
	for _, r := range e.touched {
		e.used[r] = 0
	}
	for _, id := range e.act {
		g := &e.groups[id]
		for i := range g.nres {
			e.used[g.res[i]] += g.n * g.coef[i] * g.x
		}
	}
}

// checkCapacity audits the allocation: no resource is given more than its
// capacity. It also accounts each node's throttle use.
func (e *engine) checkCapacity() {
	e.sumUsed()
	for _, r := range e.touched {
		if e.used[r] > e.caps[r]*(1+1e-9) {
			e.violate("resource %d given %.0f B/s, capacity %.0f", r, e.used[r], e.caps[r])
		}
		if int(r) < e.cfg.Nodes*resPerNode && int(r)%resPerNode == resThrottle {
			e.throttleUsed[int(r)/resPerNode] += e.used[r] * e.cfg.DT
		}
	}
}

// run moves the bytes of every active lane over [t0, t1) at its group's
// rate. An item that ends inside the step hands its lane the rest of the
// step: the lane's next item (next file, next part) starts at once.
func (e *engine) run(t0, t1 float64) {
	for _, id := range e.act {
		// Items that end may add lanes and groups: no pointer into
		// e.groups or e.lanes is held across them.
		x := e.groups[id].x
		k := len(e.groups[id].lanes)
		for i := 0; i < k; i++ {
			l := e.groups[id].lanes[i]
			cur := t0
			for e.lanes[l].on {
				ln := &e.lanes[l]
				if ln.ready > cur {
					cur = ln.ready
				}
				if cur >= t1 {
					break
				}
				if ln.pending {
					e.issue(l, cur)
					continue
				}
				if x <= 0 {
					break
				}
				if need := ln.rem / x; cur+need <= t1 {
					cur += need
					e.moved(l, ln.rem)
					ln.rem = 0
					e.itemDone(l, cur)
					continue
				}
				b := x * (t1 - cur)
				ln.rem -= b
				e.moved(l, b)
				break
			}
		}
	}
}
