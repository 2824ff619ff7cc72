package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/launch"
	"github.com/recoverd/recoverd/internal/testutil"
)

// Faults only a sidecar has: the engine process and recoverd die apart,
// and recoverd may start before its engine. Each ends with the shared
// checks: nothing lost, nothing left, the copy equals its source.

// requireNothingHeld: the node's recoverd holds no pin and its engine no
// lease beyond leases (retention leases expire by their TTL, 10s here).
// A source that served a recovery to its end holds one more, the copy's
// lease the recovery handed off to replication (--copy-retention).
func requireNothingHeld(t *testing.T, n *node, leases int64) {
	t.Helper()
	eventually(t, 30*time.Second, n.Name+" holds no pin and no extra lease", func() bool {
		return scrape(t, n)["recoverd_commit_pins"] == 0 && stats(t, n).Leases == leases
	})
}

// TestSidecarEngineKilledMidRecovery: shardd is SIGKILLed mid-recovery,
// on the target and on the source, and stays down until the recovery has
// ended. The recovery fails, saying so; once shardd is back a retried
// recovery completes, and no staging, pin or lease is left.
func TestSidecarEngineKilledMidRecovery(t *testing.T) {
	for _, victim := range []string{"target", "source"} {
		t.Run(victim, func(t *testing.T) {
			c := newClusterIn(t, sidecar)
			// The target's engine gone, its recoverd cannot drop the
			// failed recovery's staging: its cleanup sweep does, later.
			n1, n2 := c.node("n1", "--throttle", "2MB"), c.node("n2", "--cleanup-interval", "500ms")
			seed(t, n1, 3, 1000, 1024, 100)
			src := stateOf(t, n1, shardID)
			leases := stats(t, n1).Leases
			noSnapshots := &pb.RecoveryOptions{UseSnapshots: new(bool)}
			id := startRecovery(t, n2, n1.PeerAddr, noSnapshots)
			waitFor(t, n2, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromPeer().GetRecoveredBytes() > 1<<20 })
			dead := map[string]*node{"target": n2, "source": n1}[victim]
			dead.KillEngine()
			r := waitRecovery(t, n2, id)
			t.Logf("the recovery ended %v with the %s's engine down: %s", r.Stage, victim, r.Error)
			if r.Stage != pb.Stage_STAGE_FAILED || r.Error == "" {
				t.Fatalf("recovery %v with the %s's engine dead: %q", r.Stage, victim, r.Error)
			}
			dead.RestartEngine()
			// The target is absent, or (a failure after the publish: the
			// source's files kept streaming from the volume with its engine
			// dead, then the catch-up could not ask it for ops) a copy of
			// the source no newer than it.
			if tgt := stateOf(t, n2, shardID); tgt.Exists && (tgt.HistoryUUID != src.HistoryUUID || tgt.Checkpoint != tgt.MaxSeqNo || tgt.MaxSeqNo > src.MaxSeqNo) {
				t.Fatalf("after the failed recovery the target is %v; the source %v", tgt, src)
			}
			eventually(t, 30*time.Second, "the failed recovery's staging swept", func() bool { return len(leftovers(n2)) == 0 })
			r = recoverOnto(t, n2, n1, noSnapshots)
			requireDone(t, r)
			finalChecks(t, r, n1, n2, src, shardState{})
			requireNothingHeld(t, n1, leases+1) // and the copy's
			requireNothingHeld(t, n2, 0)
		})
	}
}

// TestSidecarRecoverdKilledWhileEngineWrites: the target's recoverd is
// SIGKILLed mid-recovery while its shardd goes on. Another shard of that
// shardd keeps taking writes; the shard being recovered keeps refusing
// them, across recoverd's death and restart (the engine holds the
// refusal). Restarted, recoverd resumes the recovery under its id and
// completes it; every acknowledged write of the other shard is there.
func TestSidecarRecoverdKilledWhileEngineWrites(t *testing.T) {
	c := newClusterIn(t, sidecar)
	// Enough data for the recovery to outlast recoverd's restart, paced
	// by the source.
	n1, n2 := c.node("n1", "--throttle", "2MB"), c.node("n2")
	seed(t, n1, 4, 2000, 1024, 100)
	src := stateOf(t, n1, shardID)
	other := &pb.ShardId{Index: "other", Shard: 0}
	mustv(n2.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: other}))(t)
	written := 0
	write := func(shard *pb.ShardId) error {
		_, err := n2.shard.Index(ctxT(t), &pb.IndexRequest{Shard: shard, Docs: []*pb.Doc{{Key: fmt.Sprint("k", written), Value: []byte("v")}}})
		if err == nil && shard == other {
			written++
		}
		return err
	}
	// requireRefused: a write to the shard being recovered is refused,
	// naming the recovery; one taken is a failure unless the recovery had
	// ended by then (it runs on with recoverd up).
	requireRefused := func(when, id string) {
		t.Helper()
		err := write(shardID)
		if err == nil && n2.PID() != 0 && getRecovery(t, n2, id).Stage >= pb.Stage_STAGE_DONE {
			t.Logf("the recovery ended before the write %s could be refused", when)
			return
		}
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), id) {
			t.Fatalf("a write to the shard being recovered %s: %v, want FailedPrecondition naming %s", when, err, id)
		}
	}

	id := startRecovery(t, n2, n1.PeerAddr, &pb.RecoveryOptions{UseSnapshots: new(bool)})
	waitFor(t, n2, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromPeer().GetRecoveredBytes() > 1<<20 })
	requireRefused("before recoverd dies", id)
	n2.Node.Kill()
	for range 20 {
		mustv(0, write(other))(t)
	}
	requireRefused("while recoverd is down", id)
	n2.Node.Restart()
	requireRefused("after recoverd restarted", id)
	for range 20 {
		mustv(0, write(other))(t)
	}
	if r := getRecovery(t, n2, id); r.Restarts != 1 || r.Stage > pb.Stage_STAGE_DONE {
		t.Fatalf("after recoverd's restart: recovery %s is %v with %d restarts: %s", id, r.Stage, r.Restarts, r.Error)
	}
	r := waitRecovery(t, n2, id)
	requireDone(t, r)
	finalChecks(t, r, n1, n2, src, shardState{})
	requireNothingHeld(t, n1, 1) // the copy's
	mustv(0, write(shardID))(t)  // writable again once done
	if got := mustv(n2.shard.Stats(ctxT(t), &pb.StatsRequest{Shard: other}))(t).Stats.Seqno.MaxSeqno; got != int64(written)-1 {
		t.Fatalf("the other shard acknowledged %d writes, holds up to seqno %d", written, got)
	}
}

// TestSidecarEngineMissingAtStart: recoverd --engine started with no
// engine on its socket exits within --retry-budget, saying so; started
// before shardd, it waits for it and then serves: a recovery from it
// completes.
func TestSidecarEngineMissingAtStart(t *testing.T) {
	sockDir, err := os.MkdirTemp("", "sk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "engine.sock")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Binary(t, "recoverd"), "--data", t.TempDir(), "--node-id", "n0", "--insecure", "--repo", "none",
		"--grpc-addr", testutil.FreeAddr(t), "--peer-addr", testutil.FreeAddr(t), "--http-addr", testutil.FreeAddr(t),
		"--engine", "unix://"+sock, "--retry-budget", "1s")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil || err == nil || !strings.Contains(string(out), "no engine answered") {
		t.Fatalf("recoverd with no engine: %v (%v), output:\n%s", err, ctx.Err(), out)
	}

	// Started before shardd, with a budget that covers shardd's start.
	c := newClusterIn(t, sidecar)
	n1 := c.node("n1")
	data := t.TempDir()
	e := &sidecarEngine{t: t, opts: launch.SharddOptions{Bin: testutil.Binary(t, "shardd"), Name: "n2", Data: data, Socket: sock,
		LogPath: filepath.Join(t.TempDir(), "n2-shardd.log")}}
	t.Cleanup(func() { e.stop(syscall.SIGKILL) })
	started := make(chan struct{})
	go func() {
		defer close(started)
		time.Sleep(time.Second)
		sd, err := launch.StartShardd(context.Background(), e.opts)
		if err != nil {
			t.Error(err)
			return
		}
		e.mu.Lock()
		e.proc, e.opts.Listen = sd, sd.Listen
		e.mu.Unlock()
	}()
	rd := testutil.StartNode(t, testutil.NodeOptions{Name: "n2", Data: data, Repo: c.repo, Env: c.env,
		Args: []string{"--retry-budget", "1m", "--idle-timeout", "3s", "--lease-ttl", "10s", "--engine", "unix://" + sock}})
	<-started
	if t.Failed() {
		t.FailNow()
	}
	n2 := wrap(rd)
	n2.engine = e
	conn, err := grpc.NewClient(e.opts.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n2.shard = pb.NewShardServiceClient(conn)
	mustv(n1.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	index(t, n1, 500, 256, 1)
	flush(t, n1)
	index(t, n1, 50, 256, 2)
	src := stateOf(t, n1, shardID)
	r := recoverOnto(t, n2, n1, nil)
	requireDone(t, r)
	finalChecks(t, r, n1, n2, src, shardState{})
	requireNothingHeld(t, n1, 1) // the copy's
}
