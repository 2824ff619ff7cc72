package main

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// cluster is the fleet before and after failures: where every copy is.
type cluster struct {
	cfg        *Config
	rack, zone []int32 // per node
	alive      []bool
	load       []int32 // copies held or being built, per node
	// copies[s*Copies+c] is the node of copy c of shard s; copy 0 is the
	// primary. -1: lost and not yet rebuilt.
	copies []int32
	shards int
	size   []int64 // bytes per shard
	idle   []bool  // not written since its latest snapshot
	snap   []bool  // has a snapshot
	// byNode lists the (shard*Copies + copy) slots each node holds: CSR.
	byNodeStart []int32
	byNode      []int32
}

// unitOf is the awareness unit copies of a shard must not share: the zone
// when there are enough zones for every copy, else the rack.
func (cl *cluster) unitOf(n int) int32 {
	if cl.cfg.Zones >= cl.cfg.Copies {
		return cl.zone[n]
	}
	return cl.rack[n]
}

func (cl *cluster) units() int {
	if cl.cfg.Zones >= cl.cfg.Copies {
		return cl.cfg.Zones
	}
	return int(slices.Max(cl.rack)) + 1
}

// newCluster places every copy: each node holds exactly ShardsPerNode
// copies, and the copies of a shard are in distinct zones (distinct racks
// when there are fewer zones than copies), on nodes drawn at random within
// the unit: Elasticsearch's allocation awareness with a balanced allocator.
// Shard sizes, idleness and snapshots are drawn from the seed.
func newCluster(cfg *Config) (*cluster, error) {
	n := cfg.Nodes
	cl := &cluster{cfg: cfg, rack: make([]int32, n), zone: make([]int32, n), alive: make([]bool, n), load: make([]int32, n)}
	for i := range n {
		r := i / cfg.RackSize
		cl.rack[i], cl.zone[i], cl.alive[i] = int32(r), int32(r%cfg.Zones), true
	}
	cl.shards = n * cfg.ShardsPerNode / cfg.Copies
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	units := cl.units()
	if units < cfg.Copies {
		return nil, fmt.Errorf("sim: %d copies need as many racks or zones, the fleet has %d", cfg.Copies, units)
	}
	// Shuffled node slots per unit.
	slots := make([][]int32, units)
	for i := range n {
		u := cl.unitOf(i)
		for range cfg.ShardsPerNode {
			slots[u] = append(slots[u], int32(i))
		}
	}
	for _, s := range slots {
		rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	}
	// Units of one node each (a small cluster, racks of 1) break ties at
	// random: by unit id, every node would hold the other copy of all its
	// shards on the same partner. Larger units break them by id (their
	// nodes are drawn at random within them anyway).
	tieRng := rand.New(rand.NewPCG(cfg.Seed, 0x71e))
	tie := func() uint32 {
		if cfg.RackSize == 1 && cfg.Zones < cfg.Copies {
			return tieRng.Uint32()
		}
		return 0
	}
	left := &unitHeap{}
	for u, s := range slots {
		if len(s) > 0 {
			heap.Push(left, unitLeft{u: int32(u), n: len(s), tie: tie()})
		}
	}
	cl.copies = make([]int32, cl.shards*cfg.Copies)
	picked := make([]unitLeft, cfg.Copies)
	for s := range cl.shards {
		// The units with the most slots left take the copies: the fill
		// stays even, so the last shards still find distinct units.
		for c := range cfg.Copies {
			if left.Len() == 0 {
				return nil, fmt.Errorf("sim: placement ran out of units at shard %d", s)
			}
			picked[c] = heap.Pop(left).(unitLeft)
		}
		// Which unit holds the primary is random: primaries spread evenly.
		rng.Shuffle(cfg.Copies, func(i, j int) { picked[i], picked[j] = picked[j], picked[i] })
		for c := range cfg.Copies {
			u := picked[c].u
			k := len(slots[u]) - 1
			node := slots[u][k]
			slots[u] = slots[u][:k]
			cl.copies[s*cfg.Copies+c] = node
			cl.load[node]++
			if picked[c].n--; picked[c].n > 0 {
				picked[c].tie = tie()
				heap.Push(left, picked[c])
			}
		}
	}
	cl.index()
	cl.size = make([]int64, cl.shards)
	cl.idle = make([]bool, cl.shards)
	cl.snap = make([]bool, cl.shards)
	for s := range cl.shards {
		size := max(cfg.ShardSize.sample(rng), float64(cfg.FilesPerShard)*4096)
		if cfg.MaxShardSize > 0 {
			size = min(size, cfg.MaxShardSize)
		}
		if cfg.ShardSize.Kind != "fixed" {
			size = float64(quantize(size))
		}
		cl.size[s] = int64(size)
		cl.idle[s] = rng.Float64() < cfg.IdleFraction
		cl.snap[s] = rng.Float64() < cfg.SnapshotFraction
	}
	return cl, nil
}

// quantize rounds a size to a grid of 0.5% steps, so that shards of the
// same rounded size and state share one plan (planCache).
func quantize(b float64) int64 {
	const step = 0.005
	return int64(math.Exp(math.Round(math.Log(b)/step) * step))
}

func (d Dist) sample(rng *rand.Rand) float64 {
	switch d.Kind {
	case "fixed":
		return d.A
	case "uniform":
		return d.A + rng.Float64()*(d.B-d.A)
	}
	return d.A * math.Exp(d.B*rng.NormFloat64())
}

// index builds byNode from copies.
func (cl *cluster) index() {
	n := cl.cfg.Nodes
	cl.byNodeStart = make([]int32, n+1)
	for _, node := range cl.copies {
		if node >= 0 {
			cl.byNodeStart[node+1]++
		}
	}
	for i := range n {
		cl.byNodeStart[i+1] += cl.byNodeStart[i]
	}
	cl.byNode = make([]int32, cl.byNodeStart[n])
	fill := slices.Clone(cl.byNodeStart[:n])
	for slot, node := range cl.copies {
		if node < 0 {
			continue
		}
		cl.byNode[fill[node]] = int32(slot)
		fill[node]++
	}
}

type unitLeft struct {
	u   int32
	n   int
	tie uint32
}

type unitHeap []unitLeft

func (h unitHeap) Len() int { return len(h) }
func (h unitHeap) Less(i, j int) bool {
	if h[i].n != h[j].n {
		return h[i].n > h[j].n
	}
	if h[i].tie != h[j].tie {
		return h[i].tie < h[j].tie
	}
	return h[i].u < h[j].u
}
func (h unitHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *unitHeap) Push(x any)   { *h = append(*h, x.(unitLeft)) }
func (h *unitHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// failure is one failure event: the nodes lost.
type failure struct {
	spec  string
	nodes []int32
	// ret is where its copies are rebuilt (-return's values), when the
	// failure names one (nodes:1@same-with-data); "" means -return.
	ret string
}

// parseFailures reads -fail.
func (cl *cluster) parseFailures(spec string, rng *rand.Rand) ([]failure, error) {
	var out []failure
	if spec == "none" {
		return nil, nil
	}
	for _, one := range strings.Split(spec, ";") {
		one = strings.TrimSpace(one)
		f := failure{spec: one}
		one, f.ret, _ = strings.Cut(one, "@")
		switch f.ret {
		case "", "spread", "same", "same-with-data":
		default:
			return nil, fmt.Errorf("sim: failure %q: return %q: want spread, same or same-with-data", f.spec, f.ret)
		}
		kind, arg, _ := strings.Cut(one, ":")
		switch kind {
		case "rack", "zone":
			i, err := strconv.Atoi(arg)
			if err != nil {
				return nil, fmt.Errorf("sim: failure %q: %w", one, err)
			}
			for n := range cl.cfg.Nodes {
				if (kind == "rack" && int(cl.rack[n]) == i) || (kind == "zone" && int(cl.zone[n]) == i) {
					f.nodes = append(f.nodes, int32(n))
				}
			}
		case "nodes", "node":
			for _, a := range strings.Split(arg, ",") {
				i, err := strconv.Atoi(a)
				if err != nil || i < 0 || i >= cl.cfg.Nodes {
					return nil, fmt.Errorf("sim: failure %q: node %q is not in 0..%d", one, a, cl.cfg.Nodes-1)
				}
				f.nodes = append(f.nodes, int32(i))
			}
		case "random":
			k, err := strconv.Atoi(arg)
			if err != nil || k < 1 || k >= cl.cfg.Nodes {
				return nil, fmt.Errorf("sim: failure %q: want random:K with 1 <= K < nodes", one)
			}
			for _, i := range rng.Perm(cl.cfg.Nodes)[:k] {
				f.nodes = append(f.nodes, int32(i))
			}
			slices.Sort(f.nodes)
		default:
			return nil, fmt.Errorf("sim: failure %q: want rack:I, zone:I, nodes:I,J or random:K", one)
		}
		if len(f.nodes) == 0 {
			return nil, fmt.Errorf("sim: failure %q loses no node", one)
		}
		out = append(out, f)
	}
	return out, nil
}

// lostCopy is one copy to rebuild.
type lostCopy struct {
	shard  int32
	copy   int32 // index in copies
	from   int32 // the node that held it
	source int32 // node of the surviving copy of lowest index (the primary, or the replica promoted)
	target int32
	// sourceReplica: the source is not copy 0, the copy snapshots are
	// taken from, so its files differ physically from the snapshot's.
	sourceReplica bool
	withData      bool // the target still holds its old copy (return=same-with-data)
}

// fail marks the nodes dead and returns every copy they held that has a
// surviving copy, in a shuffled order, with its source: the surviving copy
// of lowest index (the primary, or the replica promoted in its place).
// unrecoverable counts the shards that lost every copy.
func (cl *cluster) fail(f failure, rng *rand.Rand) (lost []lostCopy, unrecoverable int) {
	cl.index()
	for _, n := range f.nodes {
		cl.alive[n] = false
	}
	seen := map[int32]bool{}
	cp := cl.cfg.Copies
	for _, n := range f.nodes {
		for _, slot := range cl.byNode[cl.byNodeStart[n]:cl.byNodeStart[n+1]] {
			s := slot / int32(cp)
			src, srcCopy := int32(-1), -1
			for c := range cp {
				if node := cl.copies[int(s)*cp+c]; node >= 0 && cl.alive[node] {
					src, srcCopy = node, c
					break
				}
			}
			if src < 0 {
				if !seen[s] {
					seen[s] = true
					unrecoverable++
				}
				continue
			}
			lost = append(lost, lostCopy{shard: s, copy: slot, from: n, source: src, sourceReplica: srcCopy != 0})
		}
		cl.load[n] = 0
	}
	for _, n := range f.nodes {
		for _, slot := range cl.byNode[cl.byNodeStart[n]:cl.byNodeStart[n+1]] {
			cl.copies[slot] = -1
		}
	}
	rng.Shuffle(len(lost), func(i, j int) { lost[i], lost[j] = lost[j], lost[i] })
	return lost, unrecoverable
}

// place chooses the node that rebuilds each lost copy. spread: the live
// node with the fewest copies (held plus being built), among the nodes of
// an awareness unit (zone, else rack) that holds no surviving copy of the
// shard; when every such unit is down, any live node not holding a copy.
// Ties go to the lower node id. same / same-with-data: the failed node
// comes back (empty, or with its copies) and rebuilds its own copies.
func (cl *cluster) place(f failure, lost []lostCopy, mode string) error {
	if mode != "spread" {
		for _, n := range f.nodes {
			cl.alive[n] = true
		}
		for i := range lost {
			lost[i].target = lost[i].from
			lost[i].withData = mode == "same-with-data"
			cl.load[lost[i].target]++
		}
		return nil
	}
	nu := cl.units()
	heaps := make([]nodeHeap, nu)
	for n := range cl.cfg.Nodes {
		if cl.alive[n] {
			u := cl.unitOf(n)
			heaps[u] = append(heaps[u], nodeLoad{int32(n), cl.load[n]})
		}
	}
	for u := range heaps {
		heap.Init(&heaps[u])
	}
	cp := cl.cfg.Copies
	banned := make([]bool, nu)
	for i := range lost {
		l := &lost[i]
		clear(banned)
		for c := range cp {
			if node := cl.copies[int(l.shard)*cp+c]; node >= 0 && cl.alive[node] {
				banned[cl.unitOf(int(node))] = true
			}
		}
		best := -1
		for u := range nu {
			if banned[u] || heaps[u].Len() == 0 {
				continue
			}
			if best < 0 || heaps[u].less(heaps[u][0], heaps[best][0]) {
				best = u
			}
		}
		var node int32 = -1
		if best >= 0 {
			node = heap.Pop(&heaps[best]).(nodeLoad).n
		} else {
			// Every allowed unit is down: any live node without a copy.
			for n := range cl.cfg.Nodes {
				if cl.alive[n] && !cl.holds(l.shard, int32(n)) && (node < 0 || cl.load[n] < cl.load[node]) {
					node = int32(n)
				}
			}
			if node < 0 {
				return fmt.Errorf("sim: no live node can take a copy of shard %d", l.shard)
			}
			u := cl.unitOf(int(node))
			for j, e := range heaps[u] {
				if e.n == node {
					heap.Remove(&heaps[u], j)
					break
				}
			}
		}
		l.target = node
		cl.load[node]++
		heap.Push(&heaps[cl.unitOf(int(node))], nodeLoad{node, cl.load[node]})
	}
	return nil
}

func (cl *cluster) holds(s, node int32) bool {
	for c := range cl.cfg.Copies {
		if cl.copies[int(s)*cl.cfg.Copies+c] == node {
			return true
		}
	}
	return false
}

// rebuilt records a copy rebuilt on node.
func (cl *cluster) rebuilt(l lostCopy) {
	cl.copies[l.copy] = l.target
}

type nodeLoad struct {
	n    int32
	load int32
}

type nodeHeap []nodeLoad

func (h nodeHeap) less(a, b nodeLoad) bool {
	if a.load != b.load {
		return a.load < b.load
	}
	return a.n < b.n
}
func (h nodeHeap) Len() int           { return len(h) }
func (h nodeHeap) Less(i, j int) bool { return h.less(h[i], h[j]) }
func (h nodeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nodeHeap) Push(x any)        { *h = append(*h, x.(nodeLoad)) }
func (h *nodeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
