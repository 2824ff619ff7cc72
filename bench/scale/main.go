// Command recoverd-scale measures recoverd on one node holding many small
// shards (issue 16): for each shard count it writes a data directory of
// shards of 50 documents (copies of one shard's tree, cached under the
// work directory), starts bin/recoverd on it and reports the time to
// ready, the RSS and open descriptors once idle, the latency of
// ListShards, the first access of a shard not open, and the wall time of a
// recovery of one shard from a peer onto the node, next to the same
// recovery onto an empty node. It writes bench/results/scale.json and
// bench/results/scale.md, which `make bench` puts in REPORT.md's Scale
// section.
//
// `make scale` builds and runs it (SCALE_SHARDS=10000,100000 by default).
// Every process it starts is stopped by PID; only loopback is used.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/launch"
	"github.com/recoverd/recoverd/shardstore"
)

type result struct {
	Shards        int     `json:"shards"`
	DiskMB        float64 `json:"disk_mb"`
	ReadyS        float64 `json:"ready_s"`
	ScanS         float64 `json:"scan_s"`
	IdleRSSMiB    float64 `json:"idle_rss_mib"`
	IdleFDs       int     `json:"idle_fds"`
	Listed        int     `json:"listed"`
	ListShardsMs  float64 `json:"list_shards_ms"`
	FirstAccessMs float64 `json:"first_access_ms"`
	TouchShards   int     `json:"touch_shards"`
	TouchS        float64 `json:"touch_s"`
	TouchFDs      int     `json:"fds_after_touch"`
	TouchRSSMiB   float64 `json:"rss_after_touch_mib"`
	RecoveryS     float64 `json:"recovery_s"`
	AloneS        float64 `json:"recovery_alone_s"`
}

func main() {
	var (
		counts                = flag.String("shards", "10000,100000", "shard counts, comma-separated")
		work                  = flag.String("work", envOr("RECOVERD_BENCH_DIR", "/work/bench-data"), "work directory (data sets are cached under scale-N)")
		out                   = flag.String("out", "bench/results", "results directory")
		bin                   = flag.String("bin", "bin", "directory of recoverd")
		touch                 = flag.Int("touch", 1000, "shards asked for one after another once idle")
		recoveryDocs, recRuns = flag.Int("recovery-docs", 20000, "documents of the recovered shard"), flag.Int("recovery-runs", 3, "recoveries per case (median)")
		maxOpenFiles          = flag.Int("nofile", 0, "RLIMIT_NOFILE of the node (0: inherited)")
		keep                  = flag.Bool("keep", true, "keep the generated data sets")
	)
	flag.Parse()
	ctx := context.Background()
	recoverd, err := filepath.Abs(filepath.Join(*bin, "recoverd"))
	if err != nil {
		log.Fatal(err)
	}
	logDir := filepath.Join(*work, "scale-logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		log.Fatal(err)
	}
	r := &runner{recoverd: recoverd, logDir: logDir, nofile: *maxOpenFiles}
	fatal := func(err error) {
		r.stopAll()
		log.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		fatal(errors.New("interrupted"))
	}()
	defer r.stopAll()

	// The shard a peer serves to every recovery: one node for all runs.
	peer, err := r.start(ctx, "peer", filepath.Join(*work, "scale-peer"), true)
	if err != nil {
		fatal(err)
	}
	countList := strings.Split(*counts, ",")
	if err := peer.seed(ctx, *recRuns*(1+len(countList)), *recoveryDocs); err != nil {
		fatal(err)
	}
	lone, err := r.start(ctx, "alone", filepath.Join(*work, "scale-alone"), true)
	if err != nil {
		fatal(err)
	}
	alone, err := recoveries(ctx, lone, peer, 0, *recRuns)
	if err != nil {
		fatal(err)
	}
	r.stopNode(lone)
	var results []result
	for k, f := range countList {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fatal(fmt.Errorf("-shards: %q", f))
		}
		data := filepath.Join(*work, fmt.Sprintf("scale-%d", n))
		if err := generate(data, n); err != nil {
			fatal(err)
		}
		res, err := r.measure(ctx, peer, data, n, *touch, (1+k)**recRuns, *recRuns)
		if err != nil {
			fatal(err)
		}
		res.AloneS = alone
		results = append(results, res)
		log.Printf("%+v", res)
		if !*keep {
			os.RemoveAll(data)
		}
	}
	if err := write(*out, results, *maxOpenFiles); err != nil {
		fatal(err)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// ---- nodes ----

type runner struct {
	recoverd, logDir string
	nofile           int
	mu               sync.Mutex // nodes: stopAll may run on a signal
	nodes            []*node
}

type node struct {
	*launch.Recoverd
	conn  *grpc.ClientConn
	shard pb.ShardServiceClient
	rec   pb.RecoveryServiceClient
}

func (r *runner) start(ctx context.Context, name, data string, fresh bool) (*node, error) {
	if fresh {
		if err := os.RemoveAll(data); err != nil {
			return nil, err
		}
	}
	cmd := func(bin string, args ...string) *exec.Cmd {
		if r.nofile > 0 && name != "peer" {
			return exec.Command("prlimit", append([]string{fmt.Sprintf("--nofile=%d:%d", r.nofile, r.nofile), bin}, args...)...)
		}
		return exec.Command(bin, args...)
	}
	rd, err := launch.StartRecoverd(ctx, launch.RecoverdOptions{Bin: r.recoverd, Name: name, Data: data, Command: cmd,
		LogPath: filepath.Join(r.logDir, name+".log"), ReadyTimeout: 10 * time.Minute,
		Args: []string{"--log-level", "warn", "--cleanup-interval", "0"}})
	if err != nil {
		return nil, err
	}
	n := &node{Recoverd: rd}
	r.mu.Lock()
	r.nodes = append(r.nodes, n)
	r.mu.Unlock()
	// ListShards of 100,000 shards is about 8 MB: above gRPC's default
	// 4 MiB a client receives.
	if n.conn, err = grpc.NewClient(rd.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20))); err != nil {
		return nil, err
	}
	n.shard, n.rec = pb.NewShardServiceClient(n.conn), pb.NewRecoveryServiceClient(n.conn)
	return n, nil
}

func (n *node) stop() {
	if n.conn != nil {
		n.conn.Close()
	}
	n.Stop(syscall.SIGTERM, 30*time.Second)
}

func (r *runner) stopAll() {
	r.mu.Lock()
	nodes := r.nodes
	r.nodes = nil
	r.mu.Unlock()
	for _, n := range nodes {
		n.stop()
	}
}

func (r *runner) stopNode(n *node) {
	r.mu.Lock()
	r.nodes = slices.DeleteFunc(r.nodes, func(m *node) bool { return m == n })
	r.mu.Unlock()
	n.stop()
}

// recovered names the shards the peer serves, all alike: each run
// recovers another one, so that a node recovers several without a restart.
func recovered(i int) *pb.ShardId { return &pb.ShardId{Index: "recovered", Shard: uint32(i)} }

// seed writes the shards the peer serves: runs of them for the node alone
// and runs for each shard count.
func (n *node) seed(ctx context.Context, shards, docs int) error {
	for s := range shards {
		id := recovered(s)
		if _, err := n.shard.CreateShard(ctx, &pb.CreateShardRequest{Shard: id}); err != nil {
			return err
		}
		for i := 0; i < docs; i += 1000 {
			batch := make([]*pb.Doc, 0, 1000)
			for j := i; j < min(docs, i+1000); j++ {
				batch = append(batch, &pb.Doc{Key: fmt.Sprintf("k%07d", j), Value: []byte(strings.Repeat("x", 200))})
			}
			if _, err := n.shard.Index(ctx, &pb.IndexRequest{Shard: id, Docs: batch}); err != nil {
				return err
			}
		}
		if _, err := n.shard.Flush(ctx, &pb.FlushRequest{Shard: id}); err != nil {
			return err
		}
	}
	return nil
}

// recoveries recovers runs of the peer's shards, from first on, onto
// target, one after another, and returns the median wall time.
func recoveries(ctx context.Context, target, peer *node, first, runs int) (float64, error) {
	var walls []float64
	for i := range runs {
		wall, err := recoverOnce(ctx, target, peer, recovered(first+i))
		if err != nil {
			return 0, fmt.Errorf("recovery %d: %w", i+1, err)
		}
		walls = append(walls, wall)
	}
	slices.Sort(walls)
	return walls[len(walls)/2], nil
}

// waitScan returns once the node's startup scan has opened every shard.
func (n *node) waitScan() error {
	for {
		v, err := metric(n.HTTP, "recoverd_shards_unscanned")
		if err != nil || v == 0 {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func recoverOnce(ctx context.Context, target, peer *node, id *pb.ShardId) (float64, error) {
	start := time.Now()
	resp, err := target.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: id, SourceAddress: peer.Peer})
	if err != nil {
		return 0, err
	}
	stream, err := target.rec.WatchRecovery(ctx, &pb.WatchRecoveryRequest{Id: resp.Recovery.Id, MinInterval: durationpb.New(10 * time.Millisecond)})
	if err != nil {
		return 0, err
	}
	var last *pb.Recovery
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		last = m.Recovery
	}
	if last == nil || last.Stage != pb.Stage_STAGE_DONE {
		return 0, fmt.Errorf("recovery ended %v", last)
	}
	return time.Since(start).Seconds(), nil
}

// measure starts a node on data (n shards) and takes the figures.
func (r *runner) measure(ctx context.Context, peer *node, data string, n, touch, first, runs int) (result, error) {
	res := result{Shards: n, DiskMB: duSize(data)}
	start := time.Now()
	nd, err := r.start(ctx, "scale", data, false)
	if err != nil {
		return res, err
	}
	res.ReadyS = time.Since(start).Seconds()
	// The background scan opens every shard once; idle is after it.
	if err := nd.waitScan(); err != nil {
		return res, err
	}
	res.ScanS = time.Since(start).Seconds()
	time.Sleep(3 * time.Second) // idle: the scan's garbage collected
	runtime.GC()
	res.IdleRSSMiB, res.IdleFDs = rssMiB(nd.PID()), fdCount(nd.PID())
	var lats []float64
	for range 5 {
		t := time.Now()
		l, err := nd.shard.ListShards(ctx, &pb.ListShardsRequest{})
		if err != nil {
			return res, err
		}
		lats = append(lats, time.Since(t).Seconds()*1000)
		res.Listed = len(l.Shards)
	}
	slices.Sort(lats)
	res.ListShardsMs = lats[len(lats)/2]
	t := time.Now()
	if _, err := nd.shard.Stats(ctx, &pb.StatsRequest{Shard: pbID(shardID(n - 1))}); err != nil {
		return res, err
	}
	res.FirstAccessMs = time.Since(t).Seconds() * 1000
	res.TouchShards = max(1, min(touch, n))
	t = time.Now()
	for i := range res.TouchShards {
		if _, err := nd.shard.Stats(ctx, &pb.StatsRequest{Shard: pbID(shardID(i * (n / res.TouchShards)))}); err != nil {
			return res, err
		}
	}
	res.TouchS = time.Since(t).Seconds()
	res.TouchFDs, res.TouchRSSMiB = fdCount(nd.PID()), rssMiB(nd.PID())
	res.RecoveryS, err = recoveries(ctx, nd, peer, first, runs)
	r.stopNode(nd)
	for i := range runs { // the data set stays as generated
		if err := os.RemoveAll(shardstore.Dir(data, shardstore.ShardID{Index: "recovered", Shard: first + i})); err != nil {
			return res, err
		}
	}
	os.RemoveAll(filepath.Join(data, "recoveries"))
	return res, err
}

var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// metric returns the value of an unlabelled series on /metrics.
func metric(addr, name string) (float64, error) {
	resp, err := httpClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("metric %s not found (%v)", name, sc.Err())
}

func pbID(id shardstore.ShardID) *pb.ShardId {
	return &pb.ShardId{Index: id.Index, Shard: uint32(id.Shard)}
}

func rssMiB(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func fdCount(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

func write(out string, results []result, nofile int) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "scale.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "Measured by `make scale` (bench/scale/main.go) on %s, %d CPUs: recoverd on one node holding N shards of 50 documents of 100 bytes "+
		"(copies of one shard's tree), `--cleanup-interval 0`, descriptor limit %s. Ready: from exec to the health check serving. "+
		"Scan: from exec until the background scan has opened (and closed) every shard once (recoverd_shards_unscanned at 0). "+
		"Idle: 3 s after the scan. ListShards: median of 5. First access: Stats of a shard not open. Touch: Stats of that many shards one after another, "+
		"then the descriptors and RSS. Recovery: peer recovery of a shard of %s onto the node after that (median of the runs), and onto an empty node alone.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), nofileNote(nofile), "20,000 docs of 200 bytes")
	sb.WriteString("| shards | on disk | ready | scan | idle RSS | idle fds | ListShards | listed | first access | touch | fds / RSS after touch | recovery | recovery alone |\n")
	sb.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range results {
		fmt.Fprintf(&sb, "| %d | %.0f MB | %.2f s | %.1f s | %.0f MiB | %d | %.0f ms | %d | %.1f ms | %d in %.2f s | %d / %.0f MiB | %.2f s | %.2f s |\n",
			r.Shards, r.DiskMB, r.ReadyS, r.ScanS, r.IdleRSSMiB, r.IdleFDs, r.ListShardsMs, r.Listed, r.FirstAccessMs, r.TouchShards, r.TouchS,
			r.TouchFDs, r.TouchRSSMiB, r.RecoveryS, r.AloneS)
	}
	return os.WriteFile(filepath.Join(out, "scale.md"), []byte(sb.String()), 0o644)
}

func nofileNote(nofile int) string {
	if nofile > 0 {
		return strconv.Itoa(nofile)
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return "unknown"
	}
	return strconv.FormatUint(rl.Cur, 10)
}
