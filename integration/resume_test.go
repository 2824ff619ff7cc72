package integration

import (
	"bytes"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
)

// TestTargetKilledDuringALargePeerPlanResumes kills the target (SIGKILL)
// at 25%, 50% and 90% of a peer plan of many files, and stops it (SIGTERM)
// at 70%, restarting it each time. The recovery resumes by itself under the same id and completes
// with the source's copy; `recoverctl watch`, started before the first
// kill, follows it across the restarts to its end. The source never sends
// again a file the target had verified before a kill: what it sent in all
// (its recoverd_peer_sent_bytes_total) exceeds the plan by no more than the
// files in flight at each kill (--parallel-files of them) and a MiB.
func TestTargetKilledDuringALargePeerPlanResumes(t *testing.T) {
	bothModes(t, testTargetKilledDuringALargePeerPlanResumes)
}

func testTargetKilledDuringALargePeerPlanResumes(t *testing.T, c *cluster) {
	const parallel = 2
	// Plain chunks, so that the source's sent bytes are file bytes; its
	// throttle makes the copy last seconds and keeps little in flight.
	n1 := c.node("n1", "--throttle", "3MB", "--compression=false")
	// Cleanup sweeps all the time: never of what a paused or resumed
	// recovery staged.
	n2 := c.node("n2", "--compression=false", "--parallel-files", fmt.Sprint(parallel), "--chunk-size", "256KB", "--cleanup-interval", "20ms")
	mustv(n1.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	for i := 0; i < 14; i++ { // 14 files of ~1.3 MB
		index(t, n1, 400, 4096, uint64(i))
		flush(t, n1)
	}
	sent0 := scrape(t, n1)["recoverd_peer_sent_bytes_total"]
	id := startRecovery(t, n2, n1.PeerAddr, &pb.RecoveryOptions{UseSnapshots: new(bool)})
	var out, errOut bytes.Buffer
	watcher := exec.Command(testutil.Binary(t, "recoverctl"), "watch", id, "--addr", n2.GRPCAddr, "--insecure", "-o", "json", "--interval", "50ms", "--reconnect", "1m")
	watcher.Stdout, watcher.Stderr = &out, &errOut
	if err := watcher.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watcher.Process.Kill(); watcher.Wait() })

	var planBytes, mayResend int64
	for k, pct := range []int64{25, 50, 70, 90} {
		r := waitFor(t, n2, id, func(r *pb.Recovery) bool {
			p := r.GetTotals().GetFromPeer()
			return p.GetBytes() > 0 && p.GetRecoveredBytes()*100 >= p.GetBytes()*pct
		})
		planBytes = r.GetTotals().GetFromPeer().GetBytes()
		var verified, largest int64
		for _, f := range r.Files {
			if f.Done && f.Source == pb.FileSource_FILE_SOURCE_PEER {
				verified += f.Length
			}
			largest = max(largest, f.Length)
		}
		// What a kill may cost: the files in flight, not a verified one.
		mayResend += parallel*largest + 1<<20
		if pct == 70 {
			n2.Stop() // SIGTERM: the recovery pauses
		}
		n2.Restart() // SIGKILL, then start again on the same data
		r = getRecovery(t, n2, id)
		if r.Restarts != int32(k+1) || r.Stage > pb.Stage_STAGE_DONE { // resumed (and perhaps done already)
			t.Fatalf("after kill %d at %d%%: recovery %s is %v with %d restarts: %s", k+1, pct, id, r.Stage, r.Restarts, r.Error)
		}
		t.Logf("killed at %d%%: %d of %d bytes in verified files", pct, verified, planBytes)
	}
	r := waitRecovery(t, n2, id)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
	if r.Restarts != 4 {
		t.Fatalf("recovery restarts %d, want 4", r.Restarts)
	}
	requireSameCopy(t, n1, n2)
	requireNoLeftovers(t, n2)
	sent := int64(scrape(t, n1)["recoverd_peer_sent_bytes_total"] - sent0)
	t.Logf("the source sent %d bytes for a %d-byte plan (%d again, at most %d allowed)", sent, planBytes, sent-planBytes, mayResend)
	if sent-planBytes > mayResend {
		t.Fatalf("the source sent %d bytes again, more than the %d bytes of the files in flight at the kills: verified files were sent again", sent-planBytes, mayResend)
	}

	done := make(chan error, 1)
	go func() { done <- watcher.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("recoverctl watch: %v\n%s", err, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("recoverctl watch did not end with the recovery:\n%s", errOut.String())
	}
	var last pb.Recovery
	if err := protojson.Unmarshal(out.Bytes(), &last); err != nil {
		t.Fatalf("recoverctl watch output: %v\n%s", err, out.String())
	}
	if last.Id != id || last.Stage != pb.Stage_STAGE_DONE || last.Restarts != 4 {
		t.Fatalf("recoverctl watch ended on %s %v with %d restarts, want %s DONE after 4\n%s", last.Id, last.Stage, last.Restarts, id, errOut.String())
	}
}

// TestFinishedRecoveryOutlivesARestart: a finished recovery is kept in the
// journal for --keep-finished, so `recoverctl status ID` still answers,
// with its plan, files and result, after the node restarted.
func TestFinishedRecoveryOutlivesARestart(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node("n1"), c.node("n2", "--keep-finished", "1h")
	seed(t, n1, 2, 500, 512, 100)
	done := recoverOnto(t, n2, n1, nil)
	requireDone(t, done)
	n2.Restart()
	cmd := exec.Command(testutil.Binary(t, "recoverctl"), "status", done.Id, "--addr", n2.GRPCAddr, "--insecure", "-o", "json")
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("recoverctl status %s after the restart: %v\n%s", done.Id, err, b)
	}
	var got pb.Recovery
	if err := protojson.Unmarshal(b, &got); err != nil {
		t.Fatalf("recoverctl status output: %v\n%s", err, b)
	}
	if got.Stage != pb.Stage_STAGE_DONE || !got.GetResult().GetMatch() || got.GetResult().GetDetail() != done.GetResult().GetDetail() ||
		got.GetPlan().GetKind() != done.GetPlan().GetKind() || len(got.Files) != len(done.Files) ||
		!got.GetEndTime().AsTime().Equal(done.GetEndTime().AsTime()) || got.Restarts != 0 {
		t.Fatalf("after the restart the recovery reads\n%v\nwas\n%v", &got, done)
	}
	if l := mustv(n2.rec.ListRecoveries(ctxT(t), &pb.ListRecoveriesRequest{}))(t); len(l.Recoveries) != 1 {
		t.Fatalf("after the restart the node lists %d recoveries, want the finished one", len(l.Recoveries))
	}
}
