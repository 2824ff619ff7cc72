package integration

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// TestLoad50Shards: 50 shards recovered onto one node at once, with the
// node's default limits. All complete with the source's digest; at most
// --max-recoveries (2) run at a time while the others wait, visibly, in
// the queue; the target's memory stays bounded and its goroutines come
// back to where they were.
func TestLoad50Shards(t *testing.T) {
	const shards = 50
	c := newCluster(t)
	n1 := c.node("n1")
	n2 := c.node("n2") // default --max-recoveries 2, --max-snapshot-downloads 4
	ctx := ctxT(t)
	ids := make([]*pb.ShardId, shards)
	r := rand.New(rand.NewPCG(5, 5))
	for i := range ids {
		ids[i] = &pb.ShardId{Index: "load", Shard: uint32(i)}
		mustv(n1.shard.CreateShard(ctx, &pb.CreateShardRequest{Shard: ids[i]}))(t)
		for part := 0; part < 2; part++ {
			docs := make([]*pb.Doc, 150)
			for j := range docs {
				v := make([]byte, 1024)
				for k := range v {
					v[k] = byte(r.Uint32())
				}
				docs[j] = &pb.Doc{Key: fmt.Sprintf("d-%d-%04d", part, j), Value: v}
			}
			mustv(n1.shard.Index(ctx, &pb.IndexRequest{Shard: ids[i], Docs: docs}))(t)
			if part == 0 {
				mustv(n1.shard.Flush(ctx, &pb.FlushRequest{Shard: ids[i]}))(t)
			}
		}
	}
	// A first recovery opens what the node keeps open between recoveries
	// (the connection to the source, idle connections to the repository);
	// the goroutine baseline is taken after it.
	mustv(n1.shard.CreateShard(ctx, &pb.CreateShardRequest{Shard: shardID}))(t)
	index(t, n1, 100, 100, 1)
	requireDone(t, recoverOnto(t, n2, n1, nil))
	time.Sleep(500 * time.Millisecond)
	before := scrape(t, n2)
	baseline := before["go_goroutines"]

	recIDs := make([]string, shards)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := n2.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: ids[i], SourceAddress: n1.PeerAddr})
			if err != nil {
				t.Errorf("start recovery of %v: %v", ids[i], err)
				return
			}
			recIDs[i] = resp.Recovery.Id
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	maxRunning, maxQueued, maxQueuedGauge, maxInFlightGauge := 0, 0, 0.0, 0.0
	for polls := 0; ; polls++ {
		list := mustv(n2.rec.ListRecoveries(ctx, &pb.ListRecoveriesRequest{}))(t).Recoveries
		running, queued, finished := 0, 0, 0
		for _, rc := range list {
			if rc.GetShard().GetIndex() != "load" {
				continue // the warm-up recovery
			}
			switch {
			case rc.Stage == pb.Stage_STAGE_QUEUED:
				queued++
			case rc.Stage >= pb.Stage_STAGE_DONE:
				finished++
			default:
				running++
			}
		}
		maxRunning, maxQueued = max(maxRunning, running), max(maxQueued, queued)
		if polls%10 == 0 {
			m := scrape(t, n2)
			maxQueuedGauge = max(maxQueuedGauge, m["recoverd_recoveries_queued"])
			maxInFlightGauge = max(maxInFlightGauge, m["recoverd_recoveries_in_flight"])
		}
		if running > 2 {
			t.Fatalf("%d recoveries running at once, the limit is 2", running)
		}
		if finished == shards {
			break
		}
		if time.Since(start) > 3*time.Minute {
			t.Fatalf("after 3 minutes: %d running, %d queued, %d finished", running, queued, finished)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	for i, id := range recIDs {
		rc := getRecovery(t, n2, id)
		if rc.Stage != pb.Stage_STAGE_DONE || !rc.GetResult().GetMatch() {
			t.Fatalf("recovery of %v ended %v: %s %v", ids[i], rc.Stage, rc.Error, rc.GetResult())
		}
		src := mustv(n1.shard.Digest(ctx, &pb.DigestRequest{Shard: ids[i]}))(t)
		dst := mustv(n2.shard.Digest(ctx, &pb.DigestRequest{Shard: ids[i]}))(t)
		if src.Digest != dst.Digest || src.HistoryUuid != dst.HistoryUuid || src.Seqno.LocalCheckpoint != dst.Seqno.LocalCheckpoint {
			t.Fatalf("shard %v differs: source %v, target %v", ids[i], src, dst)
		}
	}
	if maxQueued == 0 || maxQueuedGauge == 0 {
		t.Fatalf("no recovery was seen queued (list %d, gauge %v) with %d started at once and a limit of 2", maxQueued, maxQueuedGauge, shards)
	}
	if maxInFlightGauge > 2 {
		t.Fatalf("recoverd_recoveries_in_flight reached %v", maxInFlightGauge)
	}
	requireNoLeftovers(t, n2)
	after := scrape(t, n2)
	requireMoved(t, before, after, shards, "recoverd_recoveries_finished_total", "kind", "peer", "result", "done")
	if after["recoverd_recoveries_queued"] != 0 || after["recoverd_recoveries_in_flight"] != 0 {
		t.Fatalf("gauges after all finished: queued %v, in flight %v", after["recoverd_recoveries_queued"], after["recoverd_recoveries_in_flight"])
	}
	peak := vmHWM(t, n2.PID())
	t.Logf("%d shards recovered in %v; at most %d running and %d queued at once (gauges: %v in flight, %v queued); target peak RSS %d MiB",
		shards, took.Round(time.Millisecond), maxRunning, maxQueued, maxInFlightGauge, maxQueuedGauge, peak>>20)
	if peak > 512<<20 {
		t.Fatalf("the target's peak RSS is %d MiB", peak>>20)
	}
	// The daemon's goroutines come back to where they were (finished
	// recoveries hold none; a few for idle connections may differ).
	var now float64
	eventually(t, 30*time.Second, "the target's goroutines to come back to their baseline", func() bool {
		now = scrape(t, n2)["go_goroutines"]
		return now <= baseline+5
	})
	t.Logf("target goroutines: %v before, %v after", baseline, now)
}

// vmHWM is a process's peak resident set size, from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
