package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// The demo's snapshot policy: the primary's recoverd snapshots the shard
// every second (a short interval, for the demo); the others run the same
// policy with a 10-minute interval, so that the failover below happens
// with writes after the last snapshot. Every node holds the snapshot
// retention lease from the latest snapshot's checkpoint + 1, and keeps only
// 100 ops below its checkpoint otherwise: the new replica is built from the
// snapshot plus the ops the lease kept.
func demoPolicyArgs(interval string) []string {
	return []string{"--snapshot-interval", interval, "--snapshot-jitter", "0", "--snapshot-keep", "3",
		"--snapshot-lease-max-ops", "1000000", "--retain-ops", "100", "--lease-ttl", "6s"}
}

// scheduledSnapshot waits for the primary's policy to snapshot the synced
// commit and for the replica's lease to follow it, and prints the policy.
func (d *demo) scheduledSnapshot(ctx context.Context, primary, replica *demoNode) error {
	st, err := primary.shard.Stats(ctx, &pb.StatsRequest{Shard: demoShard})
	if err != nil {
		return err
	}
	gcp := st.Stats.Seqno.GlobalCheckpoint
	var snap *pb.SnapshotInfo
	if err := d.until(ctx, "n1's policy snapshots the synced commit", func() (bool, error) {
		resp, err := primary.snap.ListSnapshots(ctx, &pb.ListSnapshotsRequest{Shard: demoShard})
		if err != nil {
			return false, err
		}
		for _, s := range resp.Snapshots {
			if s.Commit.GlobalCheckpoint >= gcp {
				snap = s
			}
		}
		return snap != nil, nil
	}); err != nil {
		return err
	}
	d.say("scheduled snapshot %s: checkpoint %d, %d files (%s)", snap.Id, snap.Commit.LocalCheckpoint, len(snap.Files), humanBytes(snap.TotalBytes))
	var pol *pb.GetSnapshotPolicyResponse
	if err := d.until(ctx, "n2's snapshot retention lease follows it", func() (bool, error) {
		pol, err = replica.snap.GetSnapshotPolicy(ctx, &pb.GetSnapshotPolicyRequest{Shard: demoShard})
		if err != nil {
			return false, err
		}
		return len(pol.Shards) == 1 && pol.Shards[0].LeaseRetainingSeqno > snap.Commit.LocalCheckpoint, nil
	}); err != nil {
		return err
	}
	for _, n := range []*demoNode{primary, replica} {
		resp, err := n.snap.GetSnapshotPolicy(ctx, &pb.GetSnapshotPolicyRequest{Shard: demoShard})
		if err != nil {
			return err
		}
		d.say("recoverctl snapshot policy --addr %s:", n.grpcAddr)
		var b bytes.Buffer
		printPolicy(&b, resp, time.Now())
		indent{indent{d.w}}.Write(b.Bytes())
	}
	return nil
}

// until polls cond every 100ms until it holds, fails, or ctx ends.
func (d *demo) until(ctx context.Context, what string, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writeMore indexes docs more documents on the primary, applies them to the
// replicas, and flushes every copy (their op logs keep 100 ops below the
// checkpoint, and what the snapshot retention lease asks).
func (d *demo) writeMore(ctx context.Context, primary *demoNode, replicas []*demoNode, docs int, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, seed))
	batch := make([]*pb.Doc, docs)
	value := make([]byte, 1024)
	for i := range batch {
		fillValue(value, r, true)
		batch[i] = &pb.Doc{Key: fmt.Sprintf("doc-%08d", r.IntN(d.docs)), Value: append([]byte(nil), value...)}
	}
	resp, err := primary.shard.Index(ctx, &pb.IndexRequest{Shard: demoShard, Docs: batch})
	if err != nil {
		return err
	}
	for _, n := range replicas {
		if _, err := n.shard.Apply(ctx, &pb.ApplyRequest{Shard: demoShard, Ops: resp.Ops}); err != nil {
			return err
		}
	}
	for _, n := range append(replicas, primary) {
		if _, err := n.shard.Flush(ctx, &pb.FlushRequest{Shard: demoShard}); err != nil {
			return err
		}
	}
	return nil
}

// checkSnapshotPlusOps fails unless the recovery used the snapshot plus
// ops and read no file byte off its source.
func checkSnapshotPlusOps(r *pb.Recovery) error {
	if r.GetPlan().GetKind() != pb.PlanKind_PLAN_KIND_SNAPSHOT || r.GetOps().GetReplayed() == 0 {
		return fmt.Errorf("recovery %s: plan %v with %d ops replayed, want the snapshot plus ops", r.Id, r.GetPlan().GetKind(), r.GetOps().GetReplayed())
	}
	if b := r.GetTotals().GetFromPeer().GetRecoveredBytes(); b != 0 {
		return errors.New("the recovery read file bytes off the new primary")
	}
	return nil
}
