package integration

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// TestBusySourceHoldsNoRecoverySlot: n1 serves one outgoing recovery at a
// time (--max-outgoing 1) and its only pin is taken. The target, which
// runs one recovery at a time (--max-recoveries 1), starts a recovery from
// n1: it waits for n1, visibly queued, without holding its slot, so a
// recovery from another source (n2) runs meanwhile. The wait is bounded:
// after --pin-wait the recovery fails, naming the limit.
func TestBusySourceHoldsNoRecoverySlot(t *testing.T) {
	const pinWait = 8 * time.Second
	c := newCluster(t)
	n1 := c.node("n1", "--max-outgoing", "1")
	n2 := c.node("n2")
	n3 := c.node("n3", "--max-recoveries", "1", "--pin-wait", pinWait.String())
	seed(t, n1, 1, 200, 512, 0)
	other := &pb.ShardId{Index: "other", Shard: 0}
	mustv(n2.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: other}))(t)
	mustv(n2.shard.Index(ctxT(t), &pb.IndexRequest{Shard: other, Docs: []*pb.Doc{{Key: "k", Value: []byte("v")}}}))(t)
	mustv(n2.shard.Flush(ctxT(t), &pb.FlushRequest{Shard: other}))(t)

	// Someone else holds n1's only outgoing slot.
	peer := peerClient(t, n1)
	pin := mustv(peer.PinCommit(ctxT(t), &pb.PinCommitRequest{Shard: shardID, Holder: "test", Ttl: durationpb.New(time.Minute)}))(t).Pin
	defer peer.ReleasePin(ctxT(t), &pb.ReleasePinRequest{PinId: pin.Id})

	busy := startRecovery(t, n3, n1.PeerAddr, nil)
	waitFor(t, n3, busy, func(r *pb.Recovery) bool {
		return r.Stage == pb.Stage_STAGE_QUEUED && len(r.Stages) > 1 // queued again, after it began to plan
	})
	free := mustv(n3.rec.StartRecovery(ctxT(t), &pb.StartRecoveryRequest{Shard: other, SourceAddress: n2.PeerAddr}))(t).Recovery.Id
	var r *pb.Recovery
	eventually(t, pinWait/2, "the recovery from the free source to finish while the other waits", func() bool {
		r = getRecovery(t, n3, free)
		return r.Stage >= pb.Stage_STAGE_DONE
	})
	requireDone(t, r)
	// The waiting recovery asks n1 again now and then (a moment in the
	// plan stage, holding the slot): it is seen queued, holding no slot,
	// between two asks, and it has not ended.
	eventually(t, pinWait/4, "the recovery from the busy source queued, holding no slot", func() bool {
		b := getRecovery(t, n3, busy)
		if b.Stage >= pb.Stage_STAGE_DONE {
			t.Fatalf("the recovery from the busy source ended (%v: %s) before --pin-wait", b.Stage, b.Error)
		}
		m := scrape(t, n3)
		return b.Stage == pb.Stage_STAGE_QUEUED && m["recoverd_recoveries_queued"] == 1 && m["recoverd_recoveries_in_flight"] == 0
	})

	b := waitRecovery(t, n3, busy)
	requireFailed(t, b, "limit of outgoing recoveries", "--max-outgoing", "--pin-wait")
	if took := b.EndTime.AsTime().Sub(b.StartTime.AsTime()); took < pinWait || took > pinWait+10*time.Second {
		t.Fatalf("the wait for the busy source ended after %v; --pin-wait is %v", took, pinWait)
	}
	m := scrape(t, n3)
	if m["recoverd_recoveries_queued"] != 0 || m["recoverd_recoveries_in_flight"] != 0 {
		t.Fatalf("after both recoveries ended: queued %v, in flight %v", m["recoverd_recoveries_queued"], m["recoverd_recoveries_in_flight"])
	}
	requireNoLeftovers(t, n3)
}
