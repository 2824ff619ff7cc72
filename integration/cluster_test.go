package integration

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
)

// cluster is a real MinIO and the recoverd nodes of one test.
type cluster struct {
	t     *testing.T
	mode  mode
	minio *testutil.MinIO
	repo  string
	env   []string
}

// newCluster is a cluster of embedded nodes (recoverd owns the shards).
func newCluster(t *testing.T) *cluster {
	t.Helper()
	return newClusterIn(t, inProcess)
}

// newClusterIn is a cluster whose nodes run in mode m (see modes_test.go).
func newClusterIn(t *testing.T, m mode) *cluster {
	t.Helper()
	mi := testutil.StartMinIO(t)
	bucket := mi.MakeBucket("recoverd")
	return &cluster{t: t, mode: m, minio: mi,
		repo: fmt.Sprintf("s3://%s/snapshots?endpoint=%s&tls=false", bucket, mi.Endpoint),
		env:  []string{"RECOVERD_S3_ACCESS_KEY=" + mi.AccessKey, "RECOVERD_S3_SECRET_KEY=" + mi.SecretKey}}
}

type node struct {
	*testutil.Node // recoverd
	// engine is the node's shardd in the sidecar mode (nil when embedded);
	// shard then talks to it, rec and snap to recoverd.
	engine *sidecarEngine
	shard  pb.ShardServiceClient
	rec    pb.RecoveryServiceClient
	snap   pb.SnapshotServiceClient
}

// node starts a recoverd node on the cluster's repository. Short retry
// budgets keep fault tests fast.
func (c *cluster) node(name string, args ...string) *node {
	c.t.Helper()
	return c.nodeOn(name, "", args...)
}

// nodeOn is node with its data directory at data (empty: a new one).
func (c *cluster) nodeOn(name, data string, args ...string) *node {
	c.t.Helper()
	base := []string{"--retry-budget", "3s", "--idle-timeout", "3s", "--lease-ttl", "10s"}
	if c.mode == sidecar {
		return c.sidecarNode(name, data, append(base, args...))
	}
	n := testutil.StartNode(c.t, testutil.NodeOptions{Name: name, Data: data, Repo: c.repo, Env: c.env, Args: append(base, args...)})
	c.t.Cleanup(func() {
		if c.t.Failed() {
			c.t.Logf("%s log tail:\n%s", name, n.LogTail(40))
		}
	})
	return wrap(n)
}

func wrap(n *testutil.Node) *node {
	conn := n.Dial()
	return &node{Node: n, shard: pb.NewShardServiceClient(conn), rec: pb.NewRecoveryServiceClient(conn), snap: pb.NewSnapshotServiceClient(conn)}
}

var shardID = &pb.ShardId{Index: "logs", Shard: 0}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// mustv(call())(t) fails the test when call returned an error.
func mustv[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// index writes docs of size bytes on the primary in batches and returns
// the ops, for replication.
func index(t *testing.T, n *node, docs, size int, seed uint64) []*pb.Op {
	t.Helper()
	return indexFrom(t, n, docs, size, seed, 0)
}

// indexFrom is index with the keys drawn from [first, first+2*docs).
func indexFrom(t *testing.T, n *node, docs, size int, seed uint64, first int) []*pb.Op {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed))
	var ops []*pb.Op
	for i := 0; i < docs; i += 500 {
		batch := make([]*pb.Doc, 0, 500)
		for j := i; j < min(i+500, docs); j++ {
			v := make([]byte, size)
			for k := range v {
				v[k] = byte(r.Uint32())
			}
			batch = append(batch, &pb.Doc{Key: fmt.Sprintf("doc-%07d", first+r.IntN(docs*2)), Value: v})
		}
		resp := mustv(n.shard.Index(ctxT(t), &pb.IndexRequest{Shard: shardID, Docs: batch}))(t)
		ops = append(ops, resp.Ops...)
	}
	return ops
}

func flush(t *testing.T, n *node, gcp ...int64) {
	t.Helper()
	req := &pb.FlushRequest{Shard: shardID}
	if len(gcp) > 0 {
		req.GlobalCheckpoint = &gcp[0]
	}
	mustv(n.shard.Flush(ctxT(t), req))(t)
}

func stats(t *testing.T, n *node) *pb.ShardStats {
	t.Helper()
	return mustv(n.shard.Stats(ctxT(t), &pb.StatsRequest{Shard: shardID}))(t).Stats
}

func digest(t *testing.T, n *node) *pb.DigestResponse {
	t.Helper()
	return mustv(n.shard.Digest(ctxT(t), &pb.DigestRequest{Shard: shardID}))(t)
}

// recoverOnto runs a recovery to its end and returns its final state.
func recoverOnto(t *testing.T, target, source *node, opts *pb.RecoveryOptions) *pb.Recovery {
	t.Helper()
	ctx := ctxT(t)
	resp := mustv(target.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: shardID, SourceAddress: source.PeerAddr, Options: opts}))(t)
	return waitRecovery(t, target, resp.Recovery.Id)
}

func waitRecovery(t *testing.T, target *node, id string) *pb.Recovery {
	t.Helper()
	stream := mustv(target.rec.WatchRecovery(ctxT(t), &pb.WatchRecoveryRequest{Id: id, MinInterval: durationpb.New(100 * time.Millisecond)}))(t)
	var last *pb.Recovery
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			return last
		}
		if err != nil {
			t.Fatal(err)
		}
		last = r.Recovery
	}
}

func requireDone(t *testing.T, r *pb.Recovery) {
	t.Helper()
	if r.Stage != pb.Stage_STAGE_DONE {
		t.Fatalf("recovery %s ended %v: %s\nplan: %v", r.Id, r.Stage, r.Error, r.GetPlan().GetReasons())
	}
	if !r.GetResult().GetMatch() {
		t.Fatalf("recovery %s done but the check did not match: %s", r.Id, r.GetResult().GetDetail())
	}
}

func requireKind(t *testing.T, r *pb.Recovery, k pb.PlanKind) {
	t.Helper()
	if r.GetPlan().GetKind() != k {
		t.Fatalf("plan kind %v, want %v; reasons:\n  %s", r.GetPlan().GetKind(), k, strings.Join(r.GetPlan().GetReasons(), "\n  "))
	}
}

// requireSameCopy checks digest, history UUID and checkpoints.
func requireSameCopy(t *testing.T, a, b *node) {
	t.Helper()
	da, db := digest(t, a), digest(t, b)
	if da.Digest != db.Digest || da.HistoryUuid != db.HistoryUuid || da.Seqno.LocalCheckpoint != db.Seqno.LocalCheckpoint || da.Seqno.MaxSeqno != db.Seqno.MaxSeqno {
		t.Fatalf("copies differ:\n %s: %v\n %s: %v", a.Name, da, b.Name, db)
	}
}

// requireNoLeftovers checks that no staging directory or temp file is left
// in any shard of the node.
func requireNoLeftovers(t *testing.T, n *node) {
	t.Helper()
	for _, l := range leftovers(n) {
		t.Error(l)
	}
}

// leftovers lists the staging entries and temp files in the node's shards.
func leftovers(n *node) []string {
	var found []string
	root := filepath.Join(n.Data, "shards")
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		base := info.Name()
		if base == "staging" && info.IsDir() {
			entries, _ := os.ReadDir(p)
			if len(entries) > 0 {
				found = append(found, fmt.Sprintf("staging left on %s: %s holds %d entries", n.Name, p, len(entries)))
			}
		}
		if strings.HasPrefix(base, ".tmp-") {
			found = append(found, fmt.Sprintf("temp file left on %s: %s", n.Name, p))
		}
		return nil
	})
	return found
}

// replicaOf builds a replica of primary's (empty) shard on target, so both
// share the history, then replays ops onto it in shuffled batches with
// other flush points and a merge: same documents, other files.
func replicate(t *testing.T, replica *node, ops []*pb.Op) {
	t.Helper()
	r := rand.New(rand.NewPCG(9, 9))
	ops = append([]*pb.Op(nil), ops...)
	r.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	for i := 0; i < len(ops); i += 700 {
		mustv(replica.shard.Apply(ctxT(t), &pb.ApplyRequest{Shard: shardID, Ops: ops[i:min(i+700, len(ops))]}))(t)
		if i%2100 == 0 {
			flush(t, replica)
		}
	}
	mustv(replica.shard.Merge(ctxT(t), &pb.MergeRequest{Shard: shardID}))(t)
}

// failover sets up the failover case: n1 primary, n2 a replica with the
// same documents in other files, a snapshot of n1 taken with every copy in
// sync, then n1 killed and n2 promoted. It returns the snapshot id.
func failover(t *testing.T, n1, n2 *node, docs int) string {
	t.Helper()
	return failoverSegments(t, n1, n2, docs, 4, false)
}

// failoverSegments is failover with the primary's docs in segments files;
// distinct draws each segment's keys from a range of its own, so that the
// replica's merged copy is as large as the snapshot (else the source
// holds a fraction of the snapshot's bytes and no snapshot plan is chosen).
func failoverSegments(t *testing.T, n1, n2 *node, docs, segments int, distinct bool) string {
	t.Helper()
	inSync(t, n1, n2, docs, segments, distinct)
	snap := mustv(n1.snap.CreateSnapshot(ctxT(t), &pb.CreateSnapshotRequest{Shard: shardID}))(t)
	promote(t, n1, n2)
	return snap.Snapshot.Id
}

// inSync is the first half of failoverSegments: n1 primary, n2 a replica
// with the same documents in other files, every copy in sync.
func inSync(t *testing.T, n1, n2 *node, docs, segments int, distinct bool) {
	t.Helper()
	mustv(n1.shard.CreateShard(ctxT(t), &pb.CreateShardRequest{Shard: shardID}))(t)
	requireDone(t, recoverOnto(t, n2, n1, nil))
	var ops []*pb.Op
	for i := 0; i < segments; i++ {
		first := 0
		if distinct {
			first = i * 2 * (docs / segments)
		}
		ops = append(ops, indexFrom(t, n1, docs/segments, 1024, uint64(i+1), first)...)
		flush(t, n1)
	}
	replicate(t, n2, ops)
	ackReplica(t, n1, n2)
	gcp := stats(t, n1).Seqno.LocalCheckpoint
	flush(t, n1, gcp)
	flush(t, n2, gcp)
}

// promote is the second half of failoverSegments: n1 dies, n2 is promoted.
func promote(t *testing.T, n1, n2 *node) {
	t.Helper()
	n1.Kill()
	mustv(n2.shard.Promote(ctxT(t), &pb.PromoteRequest{Shard: shardID}))(t)
}
