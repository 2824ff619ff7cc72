package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// clusterSpec sizes one run of TestClusterEachNodeKilledInTurn.
type clusterSpec struct {
	Name          string   `json:"name"`
	Nodes         int      `json:"nodes"`
	CopiesPerNode int      `json:"copies_per_node"` // half primaries, half replicas
	Kills         int      `json:"kills"`           // nodes 0, 1, ... in turn
	Docs          int      `json:"docs_per_shard"`  // at setup, in two flushed segments
	DocSize       int      `json:"doc_size"`
	Args          []string `json:"recoverd_args"` // besides the cluster's base flags
}

// The node limits the run checks: small, so that they bind.
const (
	clusterMaxRecoveries = 4
	clusterMaxOutgoing   = 1
	clusterMaxDownloads  = 2
)

var clusterArgs = []string{
	"--max-recoveries", fmt.Sprint(clusterMaxRecoveries), "--max-outgoing", fmt.Sprint(clusterMaxOutgoing),
	"--max-snapshot-downloads", fmt.Sprint(clusterMaxDownloads),
	// A recovery whose source serves another gives up after 2s of
	// refusals: recoveries fail for real, and the orchestrator starts them
	// again.
	"--pin-wait", "2s",
}

var (
	// clusterShort runs in make test.
	clusterShort = clusterSpec{Name: "short", Nodes: 6, CopiesPerNode: 20, Kills: 2, Docs: 200, DocSize: 1024, Args: clusterArgs}
	// clusterFull is issue 16's cluster: RECOVERD_CLUSTER=full (make soak).
	clusterFull = clusterSpec{Name: "full", Nodes: 6, CopiesPerNode: 100, Kills: 6, Docs: 200, DocSize: 1024, Args: clusterArgs}
)

// TestClusterEachNodeKilledInTurn: a cluster recovering at once. Six
// recoverd nodes on loopback share one MinIO repository; each shard has a
// primary and a replica on two of them, and a snapshot of its primary in
// the repository. Each node in turn is killed with SIGKILL while writes go
// on, and comes back empty (its data directory wiped) or with its data,
// alternately. The orchestrator promotes the replica of every primary the
// node held, then starts the recoveries of all the node's copies onto it
// at once, and starts again each one that fails (the nodes' --pin-wait is
// short: a recovery queued behind others on its source fails for real).
//
// Checked: every copy ends equal to its primary (digest, history,
// checkpoints) and no acknowledged write is lost; no node ever ran more
// than --max-recoveries, --max-outgoing or --max-snapshot-downloads at
// once (the nodes' peak gauges); every recovery that failed was FAILED
// with an error in ListRecoveries and in the node's metrics, and its
// retry completed; nothing is left in any staging directory; a node that
// comes back sweeps only its own shards' part of the repository.
//
// Reported (t.Logf, and $RECOVERD_CLUSTER_RESULTS as JSON): the time of
// each turn and in all, the plans, the peak concurrent downloads and
// requests per second MinIO saw (through a counting proxy), and the
// nodes' peaks. RECOVERD_CLUSTER=full runs issue 16's size (100 copies
// per node, every node killed: make cluster, make soak); the default is a
// short variant (20 copies per node, two kills) for make test.
// RECOVERD_CLUSTER_ARGS adds recoverd flags (the limits checked are the
// ones above).
func TestClusterEachNodeKilledInTurn(t *testing.T) {
	spec := clusterShort
	if os.Getenv("RECOVERD_CLUSTER") == "full" {
		spec = clusterFull
	}
	// More flags for an experiment (the last of a flag given twice wins),
	// e.g. RECOVERD_CLUSTER_ARGS="--pin-wait 10m".
	spec.Args = append(slices.Clone(spec.Args), strings.Fields(os.Getenv("RECOVERD_CLUSTER_ARGS"))...)
	began := time.Now()
	c := newCluster(t)
	meter := startS3Meter(t, c.minio.Endpoint)
	c.repo = strings.Replace(c.repo, c.minio.Endpoint, meter.Addr, 1)
	r := &clusterRun{t: t, spec: spec, c: c, meter: meter, plans: map[string]int{}, bytes: map[string]int64{}}
	for i := 0; i < spec.Nodes; i++ {
		r.nodes = append(r.nodes, c.node(fmt.Sprintf("n%d", i), spec.Args...))
		r.up = append(r.up, true)
		r.peaks = append(r.peaks, map[string]float64{})
	}
	r.placement()
	ctx, cancelCtx := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancelCtx()

	setup := r.setup(ctx)
	setupPlans := r.plans
	r.plans, r.bytes, r.failures = map[string]int{}, map[string]int64{}, nil
	t.Logf("setup: %d shards (%d copies per node) with %d docs of %d B and a snapshot each, in %v; plans %v; %d recoveries failed and were started again",
		len(r.shards), spec.CopiesPerNode, spec.Docs, spec.DocSize, setup.took.Round(time.Millisecond), setupPlans, setup.failed)

	baseline := map[string]float64{}
	for n := range r.nodes {
		r.scrapePeaks(n, baseline)
	}
	wctx, stopWriter := context.WithCancel(ctx)
	writeErr := r.writer(wctx)
	var turns []turnResult
	s3 := map[string]float64{}
	time.Sleep(2 * s3TickLen) // the turns' first tick holds none of the setup's requests
	roundsBegan, s3Began, refusedBefore := time.Now(), meter.mark(), r.pinRefusals()
	for v := 0; v < spec.Kills; v++ {
		turns = append(turns, r.turn(ctx, v, v%2 == 0, s3))
		select {
		case err := <-writeErr:
			t.Fatalf("writer: %v", err)
		default:
		}
	}
	total := time.Since(roundsBegan)
	stopWriter()
	if err := <-writeErr; err != nil {
		t.Fatalf("writer: %v", err)
	}
	s3Ended := meter.mark()

	r.checkCopies(ctx)
	for n := range r.nodes {
		r.scrapePeaks(n, s3)
		requireNoLeftovers(t, r.nodes[n])
	}
	limits := map[string]float64{"recoverd_recoveries_in_flight_peak": clusterMaxRecoveries,
		"recoverd_commit_pins_peak": clusterMaxOutgoing, "recoverd_snapshot_downloads_in_flight_peak": clusterMaxDownloads}
	most := map[string]float64{}
	for n, p := range r.peaks {
		for name, limit := range limits {
			if p[name] > limit {
				t.Errorf("%s: %s = %v, over its limit %v", r.nodes[n].Name, name, p[name], limit)
			}
			most[name] = max(most[name], p[name])
		}
	}
	r.report(spec, setup, turns, total, time.Since(began), most, meter.load(s3Began, s3Ended), s3, baseline, refusedBefore)
}

type phaseResult struct {
	took   time.Duration
	failed int
}

// setup creates every shard on its primary and its replica by a recovery
// from the empty primary (same history), then indexes documents on the
// primary in two flushed segments and replays them onto the replica in
// one (the same documents in other files, as after any replication), and
// snapshots every primary.
func (r *clusterRun) setup(ctx context.Context) phaseResult {
	t := r.t
	start := time.Now()
	parallel(t, len(r.shards), 8, func(i int) {
		s := r.shards[i]
		mustv(r.nodes[s.primary].shard.CreateShard(ctx, &pb.CreateShardRequest{Shard: s.id}))(t)
	})
	var tasks []*recTask
	for _, s := range r.shards {
		tasks = append(tasks, &recTask{shard: s, target: s.replica})
	}
	failed := r.recoverAll(ctx, tasks)
	parallel(t, len(r.shards), 8, func(i int) {
		s := r.shards[i]
		rng := rand.New(rand.NewPCG(uint64(i), 3))
		p, rep := r.nodes[s.primary], r.nodes[s.replica]
		var ops []*pb.Op
		for part := 0; part < 2; part++ {
			docs := make([]*pb.Doc, r.spec.Docs/2)
			for j := range docs {
				v := make([]byte, r.spec.DocSize)
				for k := range v {
					v[k] = byte(rng.Uint32())
				}
				docs[j] = &pb.Doc{Key: fmt.Sprintf("d-%d-%05d", part, j), Value: v}
			}
			ops = append(ops, mustv(p.shard.Index(ctx, &pb.IndexRequest{Shard: s.id, Docs: docs}))(t).Ops...)
			mustv(p.shard.Flush(ctx, &pb.FlushRequest{Shard: s.id}))(t)
		}
		mustv(rep.shard.Apply(ctx, &pb.ApplyRequest{Shard: s.id, Ops: ops}))(t)
		gcp := ops[len(ops)-1].Seqno
		mustv(rep.shard.Flush(ctx, &pb.FlushRequest{Shard: s.id, GlobalCheckpoint: &gcp}))(t)
		mustv(p.shard.Flush(ctx, &pb.FlushRequest{Shard: s.id, GlobalCheckpoint: &gcp}))(t)
		mustv(p.snap.CreateSnapshot(ctx, &pb.CreateSnapshotRequest{Shard: s.id}))(t)
		r.mu.Lock()
		s.ops = ops
		r.mu.Unlock()
	})
	return phaseResult{took: time.Since(start), failed: failed}
}

// parallel runs fn(0..n-1) on at most width goroutines.
func parallel(t *testing.T, n, width int, fn func(i int)) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, width)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

type turnResult struct {
	Node       string  `json:"node"`
	Back       string  `json:"back"` // empty or with-data
	Copies     int     `json:"copies"`
	Promoted   int     `json:"promoted"`
	Detect     float64 `json:"detect_seconds"`  // kill to recoveries started (promotions, restart, its startup sweep)
	Recovering float64 `json:"recover_seconds"` // recoveries started to the last copy in sync
	Failed     int     `json:"failed"`
	Cleanup    float64 `json:"cleanup_requests"` // the returning node's startup sweep
	MinIO      s3Load  `json:"minio"`            // while the recoveries ran
}

// turn kills node v, promotes the replicas of its primaries, brings it
// back (empty or with its data) and recovers every copy it holds.
func (r *clusterRun) turn(ctx context.Context, v int, empty bool, s3 map[string]float64) turnResult {
	t := r.t
	nv := r.nodes[v]
	res := turnResult{Node: nv.Name, Back: map[bool]string{true: "empty", false: "with-data"}[empty]}
	r.scrapePeaks(v, s3)
	killed := time.Now()
	tasks := r.kill(ctx, v, &res)
	if empty {
		if err := os.RemoveAll(nv.Data); err != nil {
			t.Fatal(err)
		}
	}
	nv.Restart()
	r.mu.Lock()
	r.up[v] = true
	r.mu.Unlock()
	res.Copies = len(tasks)

	// The node's startup sweep reads only its own shards' part of the
	// repository: nothing when it came back empty, a few requests per copy
	// (list and read its manifests, list its blobs and marks) otherwise.
	// The recoveries start once it is done, so that MinIO's load while
	// they run is theirs.
	eventually(t, 30*time.Second, nv.Name+"'s startup sweep", func() bool { return scrape(t, nv)["recoverd_cleanup_runs_total"] >= 1 })
	before := scrape(t, nv)
	for _, op := range []string{"list", "get", "head", "put", "delete"} {
		res.Cleanup += before[series("recoverd_s3_requests_total", "kind", "cleanup", "op", op)]
	}
	if limit := 5.0 * float64(len(tasks)); empty && res.Cleanup != 0 || res.Cleanup > limit {
		t.Errorf("%s came back %s holding %d copies and its sweep sent %v requests to the repository (%d shards in it)", nv.Name, res.Back, map[bool]int{true: 0, false: len(tasks)}[empty], res.Cleanup, len(r.shards))
	}

	started, s3Started := time.Now(), r.meter.mark()
	res.Detect = started.Sub(killed).Seconds()
	res.Failed = r.recoverAll(ctx, tasks)
	res.Recovering = time.Since(started).Seconds()
	res.MinIO = r.meter.load(s3Started, r.meter.mark())

	// Every failure is in the node's metrics too.
	after := scrape(t, nv)
	if got := failedCount(after) - failedCount(before); got != float64(res.Failed) {
		t.Errorf("%s: %d recoveries seen FAILED, recoverd_recoveries_finished_total{result=\"failed\"} moved by %v", nv.Name, res.Failed, got)
	}
	t.Logf("turn %d: %s killed, %d primaries promoted, back %s and swept (%v requests) after %.1fs; %d recoveries onto it done in %.1fs, %d failed and were started again; MinIO meanwhile: peak %d downloads, %d requests/s",
		v+1, nv.Name, res.Promoted, res.Back, res.Cleanup, res.Detect, len(tasks), res.Recovering, res.Failed, res.MinIO.PeakDownloads, res.MinIO.PeakRPS)
	return res
}

// kill kills node v with SIGKILL, promotes the replica of each primary it
// held and returns the copies it must rebuild. No write straddles it.
func (r *clusterRun) kill(ctx context.Context, v int, res *turnResult) []*recTask {
	t := r.t
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nodes[v].Kill()
	r.up[v] = false
	var tasks []*recTask
	for _, s := range r.shards {
		if s.primary != v && s.replica != v {
			continue
		}
		if s.primary == v {
			if s.state != copyInSync || !r.up[s.replica] {
				t.Fatalf("%s: the replica of %s on %s is not in sync: the shard would be lost", r.nodes[v].Name, s, r.nodes[s.replica].Name)
			}
			mustv(r.nodes[s.replica].shard.Promote(ctx, &pb.PromoteRequest{Shard: s.id}))(t)
			s.primary, s.replica = s.replica, v
			res.Promoted++
		}
		s.state = copyStale
		tasks = append(tasks, &recTask{shard: s, target: v})
	}
	return tasks
}

func failedCount(m metrics) float64 {
	var n float64
	for k, v := range m {
		if strings.HasPrefix(k, "recoverd_recoveries_finished_total{") && strings.Contains(k, `result="failed"`) {
			n += v
		}
	}
	return n
}

// checkCopies: every replica equals its primary, and every write the
// primary acknowledged is there.
func (r *clusterRun) checkCopies(ctx context.Context) {
	t := r.t
	for _, s := range r.shards {
		p := mustv(r.nodes[s.primary].shard.Digest(ctx, &pb.DigestRequest{Shard: s.id}))(t)
		q := mustv(r.nodes[s.replica].shard.Digest(ctx, &pb.DigestRequest{Shard: s.id}))(t)
		if p.Digest != q.Digest || p.HistoryUuid != q.HistoryUuid || p.Seqno.LocalCheckpoint != q.Seqno.LocalCheckpoint || p.Seqno.MaxSeqno != q.Seqno.MaxSeqno {
			t.Errorf("%s: the replica on %s differs from the primary on %s:\n  %v\n  %v", s, r.nodes[s.replica].Name, r.nodes[s.primary].Name, q, p)
		}
		if want := int64(len(s.ops)) - 1; p.Seqno.MaxSeqno != want || p.Seqno.LocalCheckpoint != want {
			t.Errorf("%s: %d ops acknowledged, the primary on %s is at max seqno %d, checkpoint %d", s, len(s.ops), r.nodes[s.primary].Name, p.Seqno.MaxSeqno, p.Seqno.LocalCheckpoint)
		}
	}
}

var durations = regexp.MustCompile(`[0-9][0-9.]*(ms|s|m)\b`)

// clusterResults is what $RECOVERD_CLUSTER_RESULTS receives.
type clusterResults struct {
	Spec          clusterSpec        `json:"spec"`
	Shards        int                `json:"shards"`
	ShardBytes    float64            `json:"shard_bytes_mean"`
	ShardFiles    float64            `json:"shard_files_mean"`
	SetupSeconds  float64            `json:"setup_seconds"`
	TotalSeconds  float64            `json:"total_seconds"` // first kill to the last copy in sync
	WallSeconds   float64            `json:"wall_seconds"`  // the whole test
	Turns         []turnResult       `json:"turns"`
	Writes        int                `json:"writes"`
	Plans         map[string]int     `json:"plans"`
	Bytes         map[string]int64   `json:"bytes"`
	Failed        int                `json:"failed"`
	FailureCauses map[string]int     `json:"failure_causes"`
	MinIO         s3Load             `json:"minio"`      // what MinIO saw during the turns, startup sweeps included
	Recoveries    s3Load             `json:"recoveries"` // peaks while recoveries ran (the highest of any turn), and their requests
	PinRefusals   int                `json:"pin_refusals"`
	NodeS3        map[string]float64 `json:"node_s3"`    // recoverd_s3_requests_total during the turns, by op and kind
	NodePeaks     map[string]float64 `json:"node_peaks"` // the highest peak of any node
}

// pinRefusals counts the times a recovery found its source at its limit
// of outgoing recoveries, from the nodes' logs (kept across restarts).
func (r *clusterRun) pinRefusals() int {
	n := 0
	for _, nd := range r.nodes {
		b, err := os.ReadFile(nd.LogPath)
		if err != nil {
			r.t.Fatal(err)
		}
		n += strings.Count(string(b), "the source is at its limit of outgoing recoveries")
	}
	return n
}

func (r *clusterRun) report(spec clusterSpec, setup phaseResult, turns []turnResult, total, wall time.Duration, most map[string]float64, load s3Load, s3, baseline map[string]float64, refusedBefore int) {
	t := r.t
	res := clusterResults{Spec: spec, Shards: len(r.shards), SetupSeconds: setup.took.Seconds(), TotalSeconds: total.Seconds(), WallSeconds: wall.Seconds(),
		Turns: turns, Writes: r.writes, Plans: r.plans, Bytes: r.bytes, FailureCauses: map[string]int{}, MinIO: load,
		NodeS3: map[string]float64{}, NodePeaks: most}
	res.Recoveries.Requests = map[string]int{}
	for _, tr := range turns {
		m := tr.MinIO
		for k, v := range m.Requests {
			res.Recoveries.Requests[k] += v
		}
		res.Recoveries.PeakRPS, res.Recoveries.PeakGetRPS = max(res.Recoveries.PeakRPS, m.PeakRPS), max(res.Recoveries.PeakGetRPS, m.PeakGetRPS)
		res.Recoveries.PeakPutRPS, res.Recoveries.PeakDownloads = max(res.Recoveries.PeakPutRPS, m.PeakPutRPS), max(res.Recoveries.PeakDownloads, m.PeakDownloads)
		res.Recoveries.Seconds += m.Seconds
	}
	res.PinRefusals = r.pinRefusals() - refusedBefore
	for _, s := range r.shards {
		st := mustv(r.nodes[s.primary].shard.Stats(ctxT(t), &pb.StatsRequest{Shard: s.id}))(t).Stats
		res.ShardBytes += float64(st.SegmentBytes) / float64(len(r.shards))
		res.ShardFiles += float64(st.Segments) / float64(len(r.shards))
	}
	for _, f := range r.failures {
		res.Failed++
		cause, _, _ := strings.Cut(f.Error, ":")
		res.FailureCauses[durations.ReplaceAllString(cause, "…")]++
	}
	for k, v := range s3 {
		if d := v - baseline[k]; d != 0 {
			res.NodeS3[strings.TrimPrefix(k, "recoverd_s3_requests_total")] = d
		}
	}
	var causes []string
	for c, n := range res.FailureCauses {
		causes = append(causes, fmt.Sprintf("%d x %q", n, c))
	}
	sort.Strings(causes)
	t.Logf("%s: %d nodes, %d shards of %.0f KiB in %.1f files; %d turns in %.1fs (setup %.1fs, whole test %.1fs); %d writes during them",
		spec.Name, spec.Nodes, len(r.shards), res.ShardBytes/1024, res.ShardFiles, len(turns), res.TotalSeconds, res.SetupSeconds, res.WallSeconds, r.writes)
	t.Logf("plans %v; bytes %v; %d recoveries failed and were started again: %s", r.plans, r.bytes, res.Failed, strings.Join(causes, ", "))
	t.Logf("MinIO while the recoveries ran: peak %d concurrent downloads (GET object), peak %d requests/s (%d GET-class, %d PUT-class), requests %v; pins refused %d times",
		res.Recoveries.PeakDownloads, res.Recoveries.PeakRPS, res.Recoveries.PeakGetRPS, res.Recoveries.PeakPutRPS, res.Recoveries.Requests, res.PinRefusals)
	t.Logf("MinIO during the turns, startup sweeps included: peak %d concurrent downloads, peak %d requests/s (%d GET-class, %d PUT-class), requests %v",
		load.PeakDownloads, load.PeakRPS, load.PeakGetRPS, load.PeakPutRPS, load.Requests)
	t.Logf("node peaks (limits %d, %d, %d): %v; nodes' S3 requests during the turns: %v",
		clusterMaxRecoveries, clusterMaxOutgoing, clusterMaxDownloads, most, res.NodeS3)
	if path := os.Getenv("RECOVERD_CLUSTER_RESULTS"); path != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("results written to %s", path)
	}
}
