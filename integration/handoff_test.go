package integration

import (
	"fmt"
	"testing"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// TestHandOffKeepsOpsForARestartedReplica is issue 14's hand-off: a
// replica recovered while the primary keeps writing joins replication with
// the recovery's lease handed over to it ("copy-n2" on n1), the
// replicator applies and acknowledges the primary's ops, the replica stops,
// the primary takes far more than --retain-ops further ops (and flushes,
// which trims its op log), and the replica, restarted, comes back by ops
// alone with no op missing. Without the hand-off the recovery's lease is
// released at its end, the op log is trimmed to --retain-ops and the
// restarted replica needs a file copy.
func TestHandOffKeepsOpsForARestartedReplica(t *testing.T) {
	c := newCluster(t)
	const retain = 50
	n1 := c.node("n1", "--retain-ops", fmt.Sprint(retain), "--copy-retention", "1h")
	n2 := c.node("n2")
	noSnap := &pb.RecoveryOptions{UseSnapshots: new(bool)}
	mustv(n1.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	for i := 0; i < 3; i++ {
		index(t, n1, 200, 512, uint64(i+1))
		flush(t, n1)
	}

	// Recover n2 while n1 keeps taking writes.
	stop := make(chan struct{})
	type written struct {
		ops []*pb.Op
		err error
	}
	writes := make(chan written, 1)
	go func() {
		var w written
		for i := 0; ; i++ {
			select {
			case <-stop:
				writes <- w
				return
			default:
			}
			resp, err := n1.shard.Index(ctxT(t), &pb.IndexRequest{Shard: shardID, Docs: []*pb.Doc{{Key: fmt.Sprintf("during-%05d", i), Value: []byte("v")}}})
			if err != nil {
				w.err = err
				writes <- w
				return
			}
			w.ops = append(w.ops, resp.Ops...)
		}
	}()
	r := recoverOnto(t, n2, n1, noSnap)
	close(stop)
	w := <-writes
	requireDone(t, r)
	if w.err != nil || len(w.ops) == 0 {
		t.Fatalf("writes during the recovery: %d, %v", len(w.ops), w.err)
	}
	during := w.ops
	leases := mustv(peerClient(t, n1).GetShardMetadata(ctxT(t), &pb.GetShardMetadataRequest{Shard: shardID}))(t).Info.Leases
	if len(leases) != 1 || leases[0].Id != "copy-n2" || leases[0].GetTtl().AsDuration().Hours() != 1 {
		t.Fatalf("after the recovery n1 holds leases %v, want n2's copy lease alone, of the copy retention period", leases)
	}

	// Replication: the ops the primary took during and after the
	// recovery reach the replica, which acknowledges them.
	replicateAck(t, n1, n2, during)
	for i := 0; i < 4; i++ {
		replicateAck(t, n1, n2, index(t, n1, 30, 256, uint64(10+i)))
	}
	flush(t, n1)
	flush(t, n2)
	requireSameCopy(t, n1, n2)

	// The replica goes away; the primary takes far more than --retain-ops
	// ops and trims its op log.
	n2.Stop()
	for i := 0; i < 4; i++ {
		index(t, n1, 5*retain, 256, uint64(20+i))
		flush(t, n1)
	}
	n2.Restart()
	r = recoverOnto(t, n2, n1, noSnap)
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_OPS_ONLY)
	requireSameCopy(t, n1, n2)
}

// replicateAck is the replicator of the tests: it applies the primary's
// ops to the replica and acknowledges the replica's local checkpoint to
// the primary, which renews the replica's lease (ShardService.AckReplica).
func replicateAck(t *testing.T, primary, replica *node, ops []*pb.Op) {
	t.Helper()
	mustv(replica.shard.Apply(ctxT(t), &pb.ApplyRequest{Shard: shardID, Ops: ops}))(t)
	ackReplica(t, primary, replica)
}

// ackReplica acknowledges the replica's local checkpoint to the primary:
// the replica's lease there (handed over by its recovery) is renewed and
// raised.
func ackReplica(t *testing.T, primary, replica *node) {
	t.Helper()
	cp := stats(t, replica).Seqno.GetLocalCheckpoint()
	mustv(primary.shard.AckReplica(ctxT(t), &pb.AckReplicaRequest{Shard: shardID, Copy: replica.Name, LocalCheckpoint: cp}))(t)
}
