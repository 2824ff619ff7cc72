package integration

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// TestTargetKilledAtRandomPoints kills the target with SIGKILL at random
// points of a recovery, many times over: in the files, verify, finalize and
// ops stages of peer plans (full copies and copies that reuse files) and of
// ops-only plans. It restarts the target with the source frozen for a
// moment, so that nothing moves yet: the shard opens at its old commit or
// the new complete one (or, killed while replaying live ops, at its new
// commit plus a prefix of those ops). Then the interrupted recovery
// resumes by itself under the same id, counts the restart, and completes
// with the source's digest; nothing is left on either node.
func TestTargetKilledAtRandomPoints(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := getenvUint("RECOVERD_CRASH_SEED"); s != 0 {
		seed = s
	}
	t.Logf("seed %d (set RECOVERD_CRASH_SEED to replay)", seed)
	rng := rand.New(rand.NewPCG(seed, 42))
	c := newCluster(t)
	// The source keeps no op below its commit (beyond leases): a target
	// behind a flush needs files, one behind unflushed ops only ops. No
	// replication here: the lease each recovery hands over to the copy
	// expires at once, as if the copy had left.
	n1 := c.node("n1", "--retain-ops", "0", "--copy-retention", "1ms")
	// The retry budget outlasts the moment the source is frozen.
	n2 := c.node("n2", "--throttle", "4MB", "--pin-ttl", "3s", "--retry-budget", "20s")
	mustv(n1.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	for i := 0; i < 3; i++ {
		index(t, n1, 400, 2048, uint64(i))
		flush(t, n1)
	}
	stages := map[string]int{}
	const iterations = 20
	for i := 0; i < iterations; i++ {
		// What the source does before this round decides the plan.
		kind := i % 3
		if i > 0 {
			switch kind {
			case 0: // merge and flush: every file differs, a full copy
				index(t, n1, 200, 2048, uint64(1000+i))
				mustv(n1.shard.Merge(ctxT(t), &pb.MergeRequest{Shard: shardID}))(t)
			case 1: // a new segment: old files reused, the new one copied
				index(t, n1, 200, 2048, uint64(1000+i))
				flush(t, n1)
			case 2: // unflushed ops only: an ops-only plan
				index(t, n1, 1500, 256, uint64(1000+i))
			}
		}
		before := stateOf(t, n2, shardID)
		src := stateOf(t, n1, shardID)
		id := startRecovery(t, n2, n1.PeerAddr, nil)
		last := killDuring(t, n2, id, rng)
		n1.Pause()
		n2.Restart()
		after := stateOf(t, n2, shardID)
		r0 := getRecovery(t, n2, id)
		n1.Resume()

		where := "after it finished"
		if r0.Restarts > 0 {
			// Resumed: the stage it was in is the one before it queued again.
			q := len(r0.Stages) - 1
			for q > 0 && r0.Stages[q].Stage != pb.Stage_STAGE_QUEUED {
				q--
			}
			if q == 0 {
				t.Fatalf("round %d: the resumed recovery's stages %v", i, r0.Stages)
			}
			stage := stageName(r0.Stages[q-1].Stage)
			where = "in stage " + stage
			stages[stage]++
			okOld := after == before
			okNew := after == src
			switch stage {
			case "queued", "init", "plan", "files", "verify":
				if !okOld {
					t.Fatalf("round %d: killed in stage %s, the target is %v, want its old self %v", i, stage, after, before)
				}
			case "finalize":
				if !okOld && !okNew {
					t.Fatalf("round %d: killed in finalize, the target is %v: neither old (%v) nor new (%v)", i, after, before, src)
				}
			case "ops":
				// Published; the live replay may have been cut: new history,
				// a checkpoint up to the source's.
				if !okNew && !okOld && (after.HistoryUUID != src.HistoryUUID || after.Checkpoint > src.Checkpoint || after.Checkpoint < min(before.Checkpoint, src.Checkpoint) && before.HistoryUUID == src.HistoryUUID) {
					t.Fatalf("round %d: killed in ops, the target is %v (old %v, source %v)", i, after, before, src)
				}
			default:
				t.Fatalf("round %d: interrupted in unknown stage %q", i, stage)
			}
		} else {
			// Journaled as finished: it ended before the kill (perhaps after
			// the last progress the watch saw), and only a recovery that
			// completed leaves the source's copy.
			stages["done"]++
			if r0.Stage != pb.Stage_STAGE_DONE || after != src {
				t.Fatalf("round %d: recovery %s (last seen %v) is %v after the restart, the target is %v, source %v", i, id, last, r0.Stage, after, src)
			}
		}
		r := waitRecovery(t, n2, id)
		requireDone(t, r)
		requireSameCopy(t, n1, n2)
		requireNoLeftovers(t, n2)
		eventually(t, 10*time.Second, "the source to hold no lease or pin of the recovery", func() bool {
			m := scrape(t, n1)
			return m["recoverd_retention_leases"] == 0 && m["recoverd_commit_pins"] == 0
		})
		t.Logf("round %d: killed %s; the target was then %v; the %v recovery went on to the end (restarts %d)", i, where, after, r.GetPlan().GetKind(), r.Restarts)
	}
	t.Logf("kills by stage: %v", stages)
	if len(stages) < 3 {
		t.Fatalf("the kills landed in too few stages: %v", stages)
	}
	requireNoLeftovers(t, n1)
}

// killDuring kills the target at a random point of recovery id: either a
// random delay after the start, or as soon as a chosen stage is reached
// plus a few milliseconds. It returns the last stage seen.
func killDuring(t *testing.T, n *node, id string, rng *rand.Rand) pb.Stage {
	t.Helper()
	stream := mustv(n.rec.WatchRecovery(ctxT(t), &pb.WatchRecoveryRequest{Id: id, MinInterval: durationpb.New(10 * time.Millisecond)}))(t)
	targets := []pb.Stage{pb.Stage_STAGE_FILES, pb.Stage_STAGE_VERIFY, pb.Stage_STAGE_FINALIZE, pb.Stage_STAGE_OPS}
	want := pb.Stage_STAGE_UNSPECIFIED
	var deadline time.Time
	if rng.IntN(2) == 0 {
		want = targets[rng.IntN(len(targets))]
	} else {
		deadline = time.Now().Add(time.Duration(rng.IntN(900)) * time.Millisecond)
	}
	extra := time.Duration(rng.IntN(15)) * time.Millisecond
	last := pb.Stage_STAGE_QUEUED
	for {
		if !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
		r, err := stream.Recv()
		if err != nil {
			break
		}
		last = r.Recovery.Stage
		if last >= pb.Stage_STAGE_DONE {
			if last != pb.Stage_STAGE_DONE {
				t.Fatalf("recovery %s ended %v before the kill: %s", id, last, r.Recovery.Error)
			}
			break
		}
		if want != pb.Stage_STAGE_UNSPECIFIED && last >= want {
			time.Sleep(extra)
			break
		}
	}
	n.Kill()
	return last
}

func getenvUint(name string) uint64 {
	var v uint64
	fmt.Sscan(strings.TrimSpace(getenv(name)), &v)
	return v
}

func stageName(s pb.Stage) string { return strings.ToLower(strings.TrimPrefix(s.String(), "STAGE_")) }
