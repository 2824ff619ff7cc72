package main

import (
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"

	"github.com/recoverd/recoverd/internal/retry"
)

// reqKind is the kind of an S3 request. LIST (ListObjectsV2) is a GET on
// the bucket: it is counted in the GET/HEAD class, against the prefix it
// lists.
type reqKind uint8

const (
	reqList reqKind = iota
	reqGet
	reqHead
	reqPut // PUT object and upload part
	reqPost
	reqDelete
	numKinds
)

var kindNames = [numKinds]string{"LIST", "GET", "HEAD", "PUT", "POST", "DELETE"}

const (
	blobs     = 0 // <...>/<index>/<shard>/blobs/
	manifests = 1 // <...>/<index>/<shard>/snapshots/
)

// indexName names the index a shard belongs to, as rollover names them
// (logs-000001, logs-000002, ...), and its shard number in it.
func indexName(s int, perIndex int) (string, int) {
	return fmt.Sprintf("logs-%06d", s/perIndex+1), s % perIndex
}

// hashPrefix is the hashed layout's first key component for a shard: the
// low bits of FNV-1a of "<index>/<shard>", in hex.
func hashPrefix(index string, shard, n int) int {
	h := fnv.New64a()
	h.Write([]byte(index + "/" + strconv.Itoa(shard)))
	return int(h.Sum64() % uint64(n))
}

// keyPrefix is the partitioned prefix of a shard's blob or manifest keys:
// the first PrefixChars characters of its key below the repository's
// prefix when set, else its first PrefixDepth components. The current
// layout (snapshot/doc.go) is
//
//	<index>/<shard>/blobs/<file>-<random>
//	<index>/<shard>/snapshots/<snapshot-id>.json
//
// and the hashed one puts a hash of "<index>/<shard>" first:
// <hash>/<index>/<shard>/...
func keyPrefix(cfg *Config, s int, kind int) string {
	index, shard := indexName(s, cfg.ShardsPerIndex)
	parts := []string{index, strconv.Itoa(shard), [2]string{"blobs", "snapshots"}[kind]}
	if cfg.Layout == "hashed" {
		width := len(strconv.FormatInt(int64(cfg.HashPrefixes-1), 16))
		parts = append([]string{fmt.Sprintf("%0*x", width, hashPrefix(index, shard, cfg.HashPrefixes))}, parts...)
	}
	if cfg.PrefixChars > 0 {
		key := strings.Join(parts, "/") + "/"
		return key[:min(cfg.PrefixChars, len(key))]
	}
	out := ""
	for _, p := range parts[:min(cfg.PrefixDepth, len(parts))] {
		out += p + "/"
	}
	return out
}

// secStat counts one second of requests against the store.
type secStat struct {
	n    [numKinds]int32 // admitted, by kind (recoveries only)
	slow int32           // answered 503 SlowDown
	hot  int32           // admitted GET-class requests on the busiest prefix
}

type window struct{ sec, cnt int32 }

// store is the object store's request side: per-prefix and total limits
// per second, 503 SlowDown past them. Background load (snapshots and the
// cleanup sweep) is a steady rate spread evenly over the prefixes; it is
// served first, and recoveries get what each prefix's limit leaves.
type store struct {
	cfg      *Config
	prefixOf [2][]int32 // [blobs|manifests][shard]
	prefixes int
	win      []window // per prefix: the second counted and its GET-class count
	totSec   int32
	totCnt   int32
	bg       background
	bgGetPP  float64 // background GET-class requests/s per prefix
	series   []secStat
	total    [numKinds]int64
	slow     int64
}

func newStore(cfg *Config, cl *cluster) *store {
	st := &store{cfg: cfg}
	ids := map[string]int32{}
	for k := range 2 {
		st.prefixOf[k] = make([]int32, cl.shards)
		for s := range cl.shards {
			p := keyPrefix(cfg, s, k)
			id, ok := ids[p]
			if !ok {
				id = int32(len(ids))
				ids[p] = id
			}
			st.prefixOf[k][s] = id
		}
	}
	st.prefixes = len(ids)
	st.win = make([]window, st.prefixes)
	for i := range st.win {
		st.win[i].sec = -1
	}
	st.totSec = -1
	st.bg = backgroundLoad(cfg, cl)
	st.bgGetPP = st.bg.get / float64(st.prefixes)
	return st
}

func (st *store) at(sec int32) *secStat {
	for int(sec) >= len(st.series) {
		st.series = append(st.series, secStat{})
	}
	return &st.series[sec]
}

// request issues one GET-class request of a recovery at time t on shard
// s's blobs or manifests prefix. It reports whether the store admitted it
// (false: 503 SlowDown).
func (st *store) request(t float64, s int32, where int, kind reqKind) bool {
	sec := int32(t)
	ss := st.at(sec)
	w := &st.win[st.prefixOf[where][s]]
	if w.sec != sec {
		w.sec, w.cnt = sec, 0
	}
	if st.totSec != sec {
		st.totSec, st.totCnt = sec, 0
	}
	if lim := st.cfg.S3GetRPS; lim > 0 && float64(w.cnt+1)+st.bgGetPP > lim+1e-9 ||
		st.cfg.S3TotalGetRPS > 0 && float64(st.totCnt+1)+st.bg.get > st.cfg.S3TotalGetRPS+1e-9 {
		ss.slow++
		st.slow++
		return false
	}
	w.cnt++
	st.totCnt++
	ss.n[kind]++
	st.total[kind]++
	if w.cnt > ss.hot {
		ss.hot = w.cnt
	}
	return true
}

// backoff is the repository's retry policy (retry.Repository):
// exponential from RetryInitial by its multiplier (1.5, cenkalti/backoff's)
// up to RetryMax, each interval randomised by +-50%.
func backoff(cfg *Config, tries int, u float64) float64 {
	d := cfg.RetryInitial * math.Pow(retry.Repository.Multiplier, float64(tries-1))
	d = min(d, cfg.RetryMax)
	return d * (0.5 + u)
}

// background is the steady request load of the fleet on the store,
// derived from the code that makes it.
type background struct {
	get, put float64 // requests/s, GET and PUT classes
	// Per kind, for the report.
	snapshot, cleanup [numKinds]float64
	cleanupPerNode    float64 // requests in one node's sweep
	cleanupBound      bool    // the sweep is sequential: latency bounds its rate
}

// backgroundLoad derives the steady load:
//
//   - The cleanup sweep (cleanup.Sweeper.sweepRepo, every
//     --cleanup-interval on every node): for every shard the node holds a
//     copy of ("held", the code), snapshot.RemoveUnfinished lists the
//     shard's manifests (LIST), reads each (GET), lists its blobs (LIST;
//     one page under 1,000 keys), HEADs the unreferenced ones (none in
//     steady state) and lists its deletion marks (LIST). "all" is the code
//     before issue 16: snapshot.Shards listed the whole repository first
//     (one LIST per 1,000 keys), then swept every shard in it; "own" would
//     sweep only the shards a node holds the primary of. It runs one
//     request at a time, so a sweep longer than the interval runs back to
//     back at 1/latency requests per second per node.
//   - Snapshots (snapshot.Create, then snapshot.GC --keep K), every shard
//     every --snapshot-interval: LIST manifests, GET each of the K kept,
//     LIST blobs, upload the files not stored yet (one PUT up to 16 MiB,
//     else POST + one PUT per 16 MiB part + POST: minio-go's multipart),
//     PUT the manifest, LIST blobs again (reused files); then GC: LIST,
//     GET K+1 manifests, DELETE the oldest manifest and the blobs only it
//     referenced.
func backgroundLoad(cfg *Config, cl *cluster) background {
	var b background
	m := newShardModel(cfg)
	k := float64(cfg.SnapshotKeep)
	withSnap, keys := 0.0, 0.0
	var churnFiles, uploadPut, uploadPost float64 // sums over shards
	for s := range cl.shards {
		sizes := m.fileSizes(cl.size[s])
		var changed []int64
		if !cl.idle[s] {
			var acc int64
			limit := int64(cfg.Churn * float64(cl.size[s]))
			for i := len(sizes) - 1; i >= 0 && acc < limit; i-- {
				changed = append(changed, sizes[i])
				acc += sizes[i]
			}
		}
		churnFiles += float64(len(changed))
		for _, n := range changed {
			if n <= 16<<20 {
				uploadPut++
			} else {
				uploadPut += math.Ceil(float64(n) / (16 << 20))
				uploadPost += 2
			}
		}
		if cl.snap[s] {
			withSnap++
			keys += float64(len(sizes)) + (k-1)*float64(len(changed)) + k
		}
	}
	if cfg.CleanupInterval > 0 && cfg.CleanupSweep != "off" {
		perShard := 3 + k // LIST manifests, GET each, LIST blobs, LIST marks
		var reqs, lists float64
		switch cfg.CleanupSweep {
		case "all":
			lists = math.Max(1, math.Ceil(keys/1000)) + 3*withSnap
			reqs = lists + k*withSnap
		default:
			swept := withSnap / float64(cfg.Nodes) // primaries per node with a snapshot
			if cfg.CleanupSweep == "held" {
				swept *= float64(cfg.Copies) // every copy
			}
			lists = 3 * swept
			reqs = perShard * swept
		}
		b.cleanupPerNode = reqs
		rate := reqs / cfg.CleanupInterval
		if cfg.S3Latency > 0 && rate > 1/cfg.S3Latency {
			rate, b.cleanupBound = 1/cfg.S3Latency, true
		}
		fleet := rate * float64(cfg.Nodes)
		b.cleanup[reqList] = fleet * lists / reqs
		b.cleanup[reqGet] = fleet - b.cleanup[reqList]
	}
	if cfg.SnapshotInterval > 0 {
		n := float64(cl.shards) / cfg.SnapshotInterval // snapshots per second
		per := func(x float64) float64 { return x / cfg.SnapshotInterval }
		b.snapshot[reqList] = n * 4 // Create: 3, GC: 1
		b.snapshot[reqGet] = n * (k + k + 1)
		b.snapshot[reqPut] = per(uploadPut) + n
		b.snapshot[reqPost] = per(uploadPost)
		b.snapshot[reqDelete] = n + per(churnFiles)
	}
	for kd := range numKinds {
		v := b.snapshot[kd] + b.cleanup[kd]
		if kd <= reqHead {
			b.get += v
		} else {
			b.put += v
		}
	}
	return b
}
