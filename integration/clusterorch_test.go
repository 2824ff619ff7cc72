package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// The orchestrator of TestClusterEachNodeKilledInTurn: what a cluster
// manager (Elasticsearch's master) does around recoverd. It knows where
// each shard's two copies are and whether the replica is in sync, replicates
// every write from the primary to an in-sync replica (as the engine
// would), promotes a replica when its primary's node dies, starts the
// recoveries of the copies a returning node must rebuild, and starts a
// recovery that failed again.

// copyState is the replica's state.
type copyState int

const (
	copyInSync     copyState = iota
	copyStale                // its node died or returned; it takes no writes
	copyRecovering           // a recovery onto it runs
)

type cshard struct {
	id               *pb.ShardId
	primary, replica int // node indexes
	state            copyState
	ops              []*pb.Op // every op the primary acknowledged, in seqno order
}

func (s *cshard) String() string { return fmt.Sprintf("%s/%d", s.id.Index, s.id.Shard) }

// recTask is one copy to rebuild: its recovery, started again until done.
type recTask struct {
	shard    *cshard
	target   int
	id       string // of the recovery running now
	attempts int
}

// recFailure is a recovery that ended FAILED, as ListRecoveries showed it.
type recFailure struct {
	Shard, Node, ID, Error string
	Stage                  string
}

type clusterRun struct {
	t     *testing.T
	spec  clusterSpec
	c     *cluster
	meter *s3Meter
	nodes []*node

	// mu guards up and the shards' roles and states. The writer holds it
	// for a whole write (primary and replica), so that no write is torn by
	// a kill or a promotion, and the catch-up of a recovered copy cannot
	// miss an op.
	mu     sync.Mutex
	up     []bool
	shards []*cshard
	writes int

	failures []recFailure
	plans    map[string]int
	bytes    map[string]int64 // from peer / snapshot / reused, of the recoveries done
	peaks    []map[string]float64
}

// placement: shard s has its primary on node s%n and its replica on one of
// the others, so every node holds as many primaries as replicas and its
// replicas' primaries are spread over every other node.
func (r *clusterRun) placement() {
	n := r.spec.Nodes
	total := n * r.spec.CopiesPerNode / 2
	for s := 0; s < total; s++ {
		p := s % n
		r.shards = append(r.shards, &cshard{
			id:      &pb.ShardId{Index: fmt.Sprintf("logs-%03d", s/10), Shard: uint32(s % 10)},
			primary: p, replica: (p + 1 + (s/n)%(n-1)) % n,
		})
	}
}

// writeOne indexes a few documents on a random shard's primary and
// replicates them to its replica if in sync; nothing when the primary's
// node is down (the shard has no primary until one is promoted).
func (r *clusterRun) writeOne(ctx context.Context, rng *rand.Rand) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.shards[rng.IntN(len(r.shards))]
	if !r.up[s.primary] {
		return nil
	}
	docs := make([]*pb.Doc, 4)
	for i := range docs {
		v := make([]byte, 512)
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		docs[i] = &pb.Doc{Key: fmt.Sprintf("w-%05d", rng.IntN(20000)), Value: v}
	}
	resp, err := r.nodes[s.primary].shard.Index(ctx, &pb.IndexRequest{Shard: s.id, Docs: docs})
	if err != nil {
		return fmt.Errorf("index on %s, the primary of %s: %w", r.nodes[s.primary].Name, s, err)
	}
	s.ops = append(s.ops, resp.Ops...)
	r.writes++
	if s.state == copyInSync {
		if _, err := r.nodes[s.replica].shard.Apply(ctx, &pb.ApplyRequest{Shard: s.id, Ops: resp.Ops}); err != nil {
			return fmt.Errorf("replicate to %s, the replica of %s: %w", r.nodes[s.replica].Name, s, err)
		}
	}
	if rng.IntN(20) != 0 {
		return nil
	}
	// A flush now and then, with the global checkpoint where both copies
	// are when the replica is in sync (as a primary tracks it).
	req := &pb.FlushRequest{Shard: s.id}
	if s.state == copyInSync {
		gcp := resp.Ops[len(resp.Ops)-1].Seqno
		req.GlobalCheckpoint = &gcp
		if _, err := r.nodes[s.replica].shard.Flush(ctx, req); err != nil {
			return fmt.Errorf("flush %s on %s: %w", s, r.nodes[s.replica].Name, err)
		}
	}
	if _, err := r.nodes[s.primary].shard.Flush(ctx, req); err != nil {
		return fmt.Errorf("flush %s on %s: %w", s, r.nodes[s.primary].Name, err)
	}
	return nil
}

// writer writes until ctx ends; the first error stops it.
func (r *clusterRun) writer(ctx context.Context) <-chan error {
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		rng := rand.New(rand.NewPCG(7, 11))
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
			if err := r.writeOne(context.WithoutCancel(ctx), rng); err != nil {
				errc <- err
				return
			}
		}
	}()
	return errc
}

// start starts (again) the recovery of a task from its shard's primary.
func (r *clusterRun) start(ctx context.Context, task *recTask) error {
	r.mu.Lock()
	src := r.nodes[task.shard.primary].PeerAddr
	task.shard.state = copyRecovering
	r.mu.Unlock()
	resp, err := r.nodes[task.target].rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: task.shard.id, SourceAddress: src})
	if err != nil {
		return fmt.Errorf("start the recovery of %s onto %s: %w", task.shard, r.nodes[task.target].Name, err)
	}
	task.id = resp.Recovery.Id
	task.attempts++
	return nil
}

// recoverAll starts every task's recovery at once and drives them to the
// end, as an orchestrator would: a recovery that fails is started again
// (from the shard's primary), and a copy whose recovery is done is
// caught up with the writes it may have missed, then marked in sync. It
// returns how many recoveries failed.
func (r *clusterRun) recoverAll(ctx context.Context, tasks []*recTask) int {
	t := r.t
	t.Helper()
	const maxAttempts = 10
	pending := map[string]*recTask{}
	for _, task := range tasks {
		if err := r.start(ctx, task); err != nil {
			t.Fatal(err)
		}
		pending[task.id] = task
	}
	failed := 0
	deadline := time.Now().Add(4 * time.Minute)
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			var left []string
			for id, task := range pending {
				left = append(left, fmt.Sprintf("%s onto %s (%s, attempt %d)", task.shard, r.nodes[task.target].Name, id, task.attempts))
			}
			t.Fatalf("recoveries not done after 4 minutes: %s", strings.Join(left, "; "))
		}
		time.Sleep(100 * time.Millisecond)
		targets := map[int]bool{}
		for _, task := range pending {
			targets[task.target] = true
		}
		for n := range targets {
			list := mustv(r.nodes[n].rec.ListRecoveries(ctx, &pb.ListRecoveriesRequest{}))(t).Recoveries
			for _, rec := range list {
				task := pending[rec.Id]
				if task == nil {
					continue
				}
				switch rec.Stage {
				case pb.Stage_STAGE_DONE:
					delete(pending, rec.Id)
					r.done(ctx, task, rec)
				case pb.Stage_STAGE_FAILED, pb.Stage_STAGE_CANCELLED:
					delete(pending, rec.Id)
					failed++
					f := recFailure{Shard: task.shard.String(), Node: r.nodes[n].Name, ID: rec.Id, Error: rec.Error, Stage: rec.Stage.String()}
					r.failures = append(r.failures, f)
					if rec.Stage == pb.Stage_STAGE_CANCELLED || rec.Error == "" {
						t.Fatalf("recovery %+v: a recovery nobody cancelled must fail, and say why", f)
					}
					if task.attempts >= maxAttempts {
						t.Fatalf("%s onto %s failed %d times, the last: %s: abandoned", task.shard, r.nodes[n].Name, task.attempts, rec.Error)
					}
					if err := r.start(ctx, task); err != nil {
						t.Fatal(err)
					}
					pending[task.id] = task
				}
			}
		}
	}
	return failed
}

// done checks a finished recovery and catches its copy up.
func (r *clusterRun) done(ctx context.Context, task *recTask, rec *pb.Recovery) {
	t := r.t
	t.Helper()
	// The check matches, or the primary took writes while it ran (the
	// catch-up below brings them, and checkCopies compares the copies in
	// the end).
	if c := rec.GetResult(); !c.GetMatch() && (c.GetSourceHistoryUuid() != c.GetTargetHistoryUuid() || c.GetSourceLocalCheckpoint() < c.GetTargetLocalCheckpoint()) {
		t.Fatalf("recovery %s of %s done but its check did not match: %s", rec.Id, task.shard, c.GetDetail())
	}
	tot := rec.GetTotals()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.plans[strings.ToLower(strings.TrimPrefix(rec.GetPlan().GetKind().String(), "PLAN_KIND_"))]++
	r.bytes["peer"] += tot.GetFromPeer().GetRecoveredBytes()
	r.bytes["snapshot"] += tot.GetFromSnapshot().GetRecoveredBytes()
	r.bytes["reused"] += tot.GetReused().GetBytes()
	// The writes the primary took since the recovery's last op, as the
	// primary's replication would send them.
	s := task.shard
	tgt := r.nodes[task.target]
	st := mustv(tgt.shard.Stats(ctx, &pb.StatsRequest{Shard: s.id}))(t).Stats
	var missing []*pb.Op
	for _, op := range s.ops {
		if op.Seqno > st.Seqno.LocalCheckpoint {
			missing = append(missing, op)
		}
	}
	if len(missing) > 0 {
		mustv(tgt.shard.Apply(ctx, &pb.ApplyRequest{Shard: s.id, Ops: missing}))(t)
	}
	s.state = copyInSync
}

// scrapePeaks keeps, per node, the highest value seen of each limit's peak
// gauge and adds up its S3 requests (a node's counters restart with it:
// scraped before each kill and at the end, the sums cover its lives).
func (r *clusterRun) scrapePeaks(n int, s3 map[string]float64) {
	m := scrape(r.t, r.nodes[n])
	for _, name := range []string{"recoverd_recoveries_in_flight_peak", "recoverd_commit_pins_peak", "recoverd_snapshot_downloads_in_flight_peak"} {
		r.peaks[n][name] = max(r.peaks[n][name], m[name])
	}
	for k, v := range m {
		if strings.HasPrefix(k, "recoverd_s3_requests_total{") {
			s3[k] += v
		}
	}
}
