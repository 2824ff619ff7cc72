package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// The test process itself (gRPC and S3 clients, proxies, fake peers) must
// leave no goroutine behind; the daemons are checked through their
// go_goroutines metric.
//
// Except toxiproxy's toxic goroutines: toxiproxy v2.5.0 stops a proxy
// without draining the links of a connection cut mid-transfer, so a
// toxic's Pipe (bandwidth, noop, and our count toxic before them) can stay
// blocked sending to the next one, whatever the test does (seen after
// TestRecoveryOutlivesEveryTTL, whose proxy throttles). They hold no
// connection: the proxy closed both ends. The same goes for the link's
// reader, blocked handing a read to the first toxic (ChanWriter.Write):
// seen after TestNetworkTrickle, where the target closes each data
// connection its idle deadline cuts while the bandwidth toxic still holds
// bytes of it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/stream.(*ChanWriter).Write"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*BandwidthToxic).Pipe"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*NoopToxic).Pipe"),
		goleak.IgnoreAnyFunction("github.com/recoverd/recoverd/internal/testutil.(*countToxic).Pipe"))
}

// metrics is one scrape of a node's /metrics: series name with its labels
// as promhttp prints them (sorted by label name) -> value.
type metrics map[string]float64

func scrape(t *testing.T, n *node) metrics {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + n.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", n.Name, err)
	}
	defer resp.Body.Close()
	out := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape %s: %v", n.Name, err)
	}
	return out
}

// series names one series: series("x_total", "kind", "peer", "result", "done").
func series(name string, labelPairs ...string) string {
	if len(labelPairs) == 0 {
		return name
	}
	type kv struct{ k, v string }
	var l []kv
	for i := 0; i+1 < len(labelPairs); i += 2 {
		l = append(l, kv{labelPairs[i], labelPairs[i+1]})
	}
	slices.SortFunc(l, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	parts := make([]string, len(l))
	for i, p := range l {
		parts[i] = fmt.Sprintf("%s=%q", p.k, p.v)
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// delta is how much a series moved between two scrapes.
func delta(before, after metrics, name string, labelPairs ...string) float64 {
	s := series(name, labelPairs...)
	return after[s] - before[s]
}

// sum adds every series of a metric name (all label values).
func (m metrics) sum(name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

// requireMoved fails unless the series moved by want (want < 0: by at
// least 1).
func requireMoved(t *testing.T, before, after metrics, want float64, name string, labelPairs ...string) {
	t.Helper()
	d := delta(before, after, name, labelPairs...)
	if want < 0 && d < 1 || want >= 0 && math.Abs(d-want) > 1e-9 {
		w := fmt.Sprint(want)
		if want < 0 {
			w = ">= 1"
		}
		t.Fatalf("metric %s moved by %v, want %s", series(name, labelPairs...), d, w)
	}
}

// shardState is what a copy of a shard holds, for "unchanged" checks.
type shardState struct {
	Exists      bool
	Digest      string
	HistoryUUID string
	MaxSeqNo    int64
	Checkpoint  int64
}

func (s shardState) String() string {
	if !s.Exists {
		return "absent"
	}
	return fmt.Sprintf("digest %.12s history %.8s max %d checkpoint %d", s.Digest, s.HistoryUUID, s.MaxSeqNo, s.Checkpoint)
}

// stateOf reads a copy's state; a shard a recovery is creating on the
// node does not exist yet.
func stateOf(t *testing.T, n *node, shard *pb.ShardId) shardState {
	t.Helper()
	d, err := n.shard.Digest(ctxT(t), &pb.DigestRequest{Shard: shard})
	if status.Code(err) == codes.NotFound || isBeingCreated(err) {
		return shardState{}
	}
	if err != nil {
		t.Fatalf("digest of %v on %s: %v", shard, n.Name, err)
	}
	return shardState{Exists: true, Digest: d.Digest, HistoryUUID: d.HistoryUuid, MaxSeqNo: d.Seqno.MaxSeqno, Checkpoint: d.Seqno.LocalCheckpoint}
}

// isBeingCreated: the error a node answers for a shard a recovery onto it
// is creating (it exists once the recovery publishes).
func isBeingCreated(err error) bool {
	return status.Code(err) == codes.FailedPrecondition && strings.Contains(err.Error(), "being created by a recovery")
}

// requireUnchanged: the target is its previous self (a shard that did not
// exist still does not: a failed recovery leaves nothing).
func requireUnchanged(t *testing.T, n *node, shard *pb.ShardId, before shardState) {
	t.Helper()
	now := stateOf(t, n, shard)
	if now == before {
		return
	}
	t.Fatalf("%s changed: before %v, now %v", n.Name, before, now)
}

// startRecovery starts a recovery of shardID from sourceAddr (a node's peer
// address or a proxy in front of it) and returns its id.
func startRecovery(t *testing.T, target *node, sourceAddr string, opts *pb.RecoveryOptions) string {
	t.Helper()
	resp := mustv(target.rec.StartRecovery(ctxT(t), &pb.StartRecoveryRequest{Shard: shardID, SourceAddress: sourceAddr, Options: opts}))(t)
	return resp.Recovery.Id
}

func requireFailed(t *testing.T, r *pb.Recovery, wantInError ...string) {
	t.Helper()
	if r.Stage != pb.Stage_STAGE_FAILED {
		t.Fatalf("recovery %s ended %v, want FAILED (error %q)", r.Id, r.Stage, r.Error)
	}
	for _, w := range wantInError {
		if !strings.Contains(r.Error, w) {
			t.Fatalf("recovery %s failed with %q, which does not say %q", r.Id, r.Error, w)
		}
	}
}

// requireBytesAddUp: every file of the plan was recovered (or reused), and
// the per-source byte counts add up to the file set.
func requireBytesAddUp(t *testing.T, r *pb.Recovery) {
	t.Helper()
	tot := r.GetTotals()
	got := tot.GetReused().GetRecoveredBytes() + tot.GetFromPeer().GetRecoveredBytes() + tot.GetFromSnapshot().GetRecoveredBytes()
	if got != tot.GetTotal().GetBytes() || tot.GetTotal().GetRecoveredBytes() != tot.GetTotal().GetBytes() ||
		tot.GetTotal().GetRecoveredFiles() != tot.GetTotal().GetFiles() {
		t.Fatalf("byte counts do not add up: %v", tot)
	}
	for _, f := range r.Files {
		if !f.Done || f.RecoveredBytes != f.Length {
			t.Fatalf("file %s: done %v, %d of %d bytes", f.Name, f.Done, f.RecoveredBytes, f.Length)
		}
	}
}

// getRecovery reads a recovery with its files.
func getRecovery(t *testing.T, n *node, id string) *pb.Recovery {
	t.Helper()
	return mustv(n.rec.GetRecovery(ctxT(t), &pb.GetRecoveryRequest{Id: id}))(t).Recovery
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The repository, read and written behind the daemons' backs.

func (c *cluster) bucket() string {
	b, _, _ := strings.Cut(strings.TrimPrefix(c.repo, "s3://"), "/")
	return b
}

// objectKey is the bucket key of a repository key: the daemons' repository
// lives under the "snapshots" prefix, in the hashed layout.
func objectKey(key string) string {
	return "snapshots/" + snapshot.ObjectKey(snapshot.LayoutHashed, key)
}

func getObject(t *testing.T, c *cluster, key string) []byte {
	t.Helper()
	o, err := c.minio.Client().GetObject(ctxT(t), c.bucket(), objectKey(key), minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return b
}

func putObject(t *testing.T, c *cluster, key string, data []byte) {
	t.Helper()
	if _, err := c.minio.Client().PutObject(ctxT(t), c.bucket(), objectKey(key), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func listObjects(t *testing.T, c *cluster) []string {
	t.Helper()
	var out []string
	for o := range c.minio.Client().ListObjects(ctxT(t), c.bucket(), minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		out = append(out, o.Key)
	}
	slices.Sort(out)
	return out
}

func readManifest(t *testing.T, c *cluster, snapID string) *snapshot.Manifest {
	t.Helper()
	m, err := snapshot.DecodeManifest(getObject(t, c, snapshot.ManifestKey(shardstore.ShardID{Index: shardID.Index, Shard: int(shardID.Shard)}, snapID)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func getenv(name string) string { return os.Getenv(name) }
