package integration

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

// Bad input, over the daemons' gRPC APIs: each is answered with the right
// code and a message that says what is wrong, and nothing is written.

// requireCode fails unless err has code and its message holds every want.
func requireStatus(t *testing.T, what string, err error, code codes.Code, want ...string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("%s: %v, want %v", what, err, code)
	}
	for _, w := range want {
		if !strings.Contains(st.Message(), w) {
			t.Fatalf("%s: message %q does not say %q", what, st.Message(), w)
		}
	}
}

// streamErr is the error of a server stream's first Recv.
func streamErr[T any](st grpc.ServerStreamingClient[T], err error) error {
	if err != nil {
		return err
	}
	for {
		if _, err := st.Recv(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// peerClient dials a node's peer listener.
func peerClient(t *testing.T, n *node) pb.PeerServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(n.PeerAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewPeerServiceClient(conn)
}

// tree lists every path under dir with its size, to show nothing was
// written.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if info.IsDir() {
			out = append(out, rel+"/")
		} else if !strings.HasSuffix(rel, ".log") && !strings.Contains(rel, "oplog") && info.Name() != "LOCK" &&
			!strings.HasSuffix(rel, ".recovery") { // the journal of a (failed) recovery: its state, not data
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

func requireTreeUnchanged(t *testing.T, n *node, before []string) {
	t.Helper()
	if now := tree(t, n.Data); !slices.Equal(now, before) {
		t.Fatalf("%s's data directory changed:\nbefore %v\nnow    %v", n.Name, before, now)
	}
}

// badNames are index, file, lease and recovery names that must never
// reach a path.
var badNames = map[string]string{
	"separator":  "a/b",
	"backslash":  `a\b`,
	"dotdot":     "..",
	"up":         "../../etc",
	"nul":        "a\x00b",
	"overlong":   strings.Repeat("x", shardstore.MaxNameLen+1),
	"dot-prefix": ".tmp-x",
}

func TestBadInputUnknownShard(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node("n1"), c.node("n2")
	seed(t, n1, 1, 100, 64, 0)
	before1, before2 := tree(t, n1.Data), tree(t, n2.Data)
	unknown := &pb.ShardId{Index: "nope", Shard: 7}
	peer := peerClient(t, n1)
	ctx := ctxT(t)

	_, err := peer.GetShardMetadata(ctx, &pb.GetShardMetadataRequest{Shard: unknown})
	requireStatus(t, "GetShardMetadata of an unknown shard", err, codes.NotFound, "nope/7", "not on this node")
	if rpcerr.Reason(err) != pb.ErrorReason_SHARD_NOT_FOUND {
		t.Fatalf("reason %v", rpcerr.Reason(err))
	}
	_, err = peer.PinCommit(ctx, &pb.PinCommitRequest{Shard: unknown})
	requireStatus(t, "PinCommit of an unknown shard", err, codes.NotFound, "nope/7")
	_, err = peer.AcquireLease(ctx, &pb.AcquireLeaseRequest{Shard: unknown, LeaseId: "l1", RetainingSeqno: 0})
	requireStatus(t, "AcquireLease on an unknown shard", err, codes.NotFound, "nope/7")
	err = streamErr(peer.FetchOps(ctx, &pb.FetchOpsRequest{Shard: unknown, Range: &pb.SeqNoRange{From: 0, To: 1}, ExpectedHistoryUuid: "h"}))
	requireStatus(t, "FetchOps of an unknown shard", err, codes.NotFound, "nope/7")
	_, err = n2.shard.Stats(ctx, &pb.StatsRequest{Shard: unknown})
	requireStatus(t, "Stats of an unknown shard", err, codes.NotFound, "nope/7", "does not exist")
	_, err = n2.rec.GetRecovery(ctx, &pb.GetRecoveryRequest{Id: "r-unknown"})
	requireStatus(t, "GetRecovery of an unknown id", err, codes.NotFound, "r-unknown")

	// A recovery of a shard the source does not hold fails at once,
	// saying so, and creates nothing on the target.
	resp := mustv(n2.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: unknown, SourceAddress: n1.PeerAddr}))(t)
	r := waitRecovery(t, n2, resp.Recovery.Id)
	requireFailed(t, r, "does not hold shard nope/7", "nothing was changed")
	requireTreeUnchanged(t, n1, before1)
	requireTreeUnchanged(t, n2, before2)
}

func TestBadInputNames(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node("n1"), c.node("n2")
	seed(t, n1, 1, 100, 64, 0)
	peer := peerClient(t, n1)
	ctx := ctxT(t)
	pin := mustv(peer.PinCommit(ctx, &pb.PinCommitRequest{Shard: shardID}))(t).Pin
	before1, before2 := tree(t, n1.Data), tree(t, n2.Data)
	for name, bad := range badNames {
		t.Run(name, func(t *testing.T) {
			sh := &pb.ShardId{Index: bad, Shard: 0}
			_, err := n2.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: sh, SourceAddress: n1.PeerAddr})
			requireStatus(t, "StartRecovery with index "+name, err, codes.InvalidArgument, "index name", "invalid name")
			_, err = n2.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: shardID, SourceAddress: n1.PeerAddr, RecoveryId: bad})
			requireStatus(t, "StartRecovery with recovery id "+name, err, codes.InvalidArgument, "invalid name")
			_, err = n2.shard.CreateShard(ctx, &pb.CreateShardRequest{Shard: sh})
			requireStatus(t, "CreateShard "+name, err, codes.InvalidArgument, "index name")
			_, err = n2.rec.ExplainPlan(ctx, &pb.ExplainPlanRequest{Shard: sh, SourceAddress: n1.PeerAddr})
			requireStatus(t, "ExplainPlan "+name, err, codes.InvalidArgument, "index name")
			_, err = peer.GetShardMetadata(ctx, &pb.GetShardMetadataRequest{Shard: sh})
			requireStatus(t, "GetShardMetadata "+name, err, codes.InvalidArgument, "index name")
			err = streamErr(peer.FetchFile(ctx, &pb.FetchFileRequest{Shard: shardID, PinId: pin.Id, Name: bad}))
			requireStatus(t, "FetchFile "+name, err, codes.InvalidArgument, "file name")
			_, err = peer.AcquireLease(ctx, &pb.AcquireLeaseRequest{Shard: shardID, LeaseId: bad})
			requireStatus(t, "AcquireLease "+name, err, codes.InvalidArgument, "lease_id")
			_, err = n1.snap.DeleteSnapshot(ctx, &pb.DeleteSnapshotRequest{Shard: shardID, SnapshotId: bad})
			requireStatus(t, "DeleteSnapshot "+name, err, codes.InvalidArgument, "snapshot id")
		})
	}
	mustv(peer.ReleasePin(ctx, &pb.ReleasePinRequest{PinId: pin.Id}))(t)
	requireTreeUnchanged(t, n1, before1)
	requireTreeUnchanged(t, n2, before2)
	if l := mustv(n2.rec.ListRecoveries(ctx, &pb.ListRecoveriesRequest{}))(t); len(l.Recoveries) != 0 {
		t.Fatalf("bad requests registered recoveries: %v", l.Recoveries)
	}
}

func TestBadInputSeqnoRangesAndOffsets(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1")
	seed(t, n1, 1, 100, 64, 10)
	peer := peerClient(t, n1)
	ctx := ctxT(t)
	info := mustv(peer.GetShardMetadata(ctx, &pb.GetShardMetadataRequest{Shard: shardID}))(t).Info
	history := info.Metadata.Commit.HistoryUuid
	before := tree(t, n1.Data)
	defer func() { requireTreeUnchanged(t, n1, before) }()

	for _, tc := range []struct {
		name     string
		rng      *pb.SeqNoRange
		history  string
		code     codes.Code
		contains string
	}{
		{"negative", &pb.SeqNoRange{From: -5, To: 3}, history, codes.InvalidArgument, "ops range"},
		{"inverted", &pb.SeqNoRange{From: 50, To: 20}, history, codes.InvalidArgument, "ops range"},
		{"missing", nil, history, codes.InvalidArgument, "range is required"},
		{"past the end", &pb.SeqNoRange{From: 0, To: 5000}, history, codes.OutOfRange, "has seen ops up to 109"},
		{"no history", &pb.SeqNoRange{From: 0, To: 5}, "", codes.InvalidArgument, "expected_history_uuid is required"},
		// A copy of another history asking for ops: refused, whatever the range.
		{"other history", &pb.SeqNoRange{From: 0, To: 5}, "another-history", codes.FailedPrecondition, "never exchange ops"},
	} {
		err := streamErr(peer.FetchOps(ctx, &pb.FetchOpsRequest{Shard: shardID, Range: tc.rng, ExpectedHistoryUuid: tc.history}))
		requireStatus(t, "FetchOps "+tc.name, err, tc.code, tc.contains)
		if tc.name == "other history" && rpcerr.Reason(err) != pb.ErrorReason_HISTORY_MISMATCH {
			t.Fatalf("other history: reason %v", rpcerr.Reason(err))
		}
	}
	_, err := peer.AcquireLease(ctx, &pb.AcquireLeaseRequest{Shard: shardID, LeaseId: "l1", RetainingSeqno: -1})
	requireStatus(t, "AcquireLease retaining -1", err, codes.InvalidArgument, "negative")
	requireTreeUnchanged(t, n1, before)
	// A lease taken right (it writes the shard's lease file), then renewed
	// wrong: the renewal changes nothing.
	mustv(peer.AcquireLease(ctx, &pb.AcquireLeaseRequest{Shard: shardID, LeaseId: "l1", RetainingSeqno: 100}))(t)
	lower := int64(50)
	_, err = peer.RenewLease(ctx, &pb.RenewLeaseRequest{Shard: shardID, LeaseId: "l1", RetainingSeqno: &lower})
	requireStatus(t, "RenewLease lowering the seqno", err, codes.InvalidArgument, "not lower it")
	info = mustv(peer.GetShardMetadata(ctx, &pb.GetShardMetadataRequest{Shard: shardID}))(t).Info
	if len(info.Leases) != 1 || info.Leases[0].RetainingSeqno != 100 {
		t.Fatalf("leases after a bad renewal: %v", info.Leases)
	}
	mustv(peer.ReleaseLease(ctx, &pb.ReleaseLeaseRequest{Shard: shardID, LeaseId: "l1"}))(t)
	before = tree(t, n1.Data)

	// Chunk requests outside a file.
	pin := mustv(peer.PinCommit(ctx, &pb.PinCommitRequest{Shard: shardID}))(t).Pin
	f := info.Metadata.Files[0]
	for _, tc := range []struct {
		name           string
		offset, length int64
		file           string
		code           codes.Code
		contains       string
	}{
		{"offset past the end", f.Length + 1, 0, f.Name, codes.OutOfRange, "outside file"},
		{"negative offset", -1, 0, f.Name, codes.OutOfRange, "outside file"},
		{"length past the end", f.Length - 10, 11, f.Name, codes.OutOfRange, "runs past the end"},
		{"negative length", 0, -5, f.Name, codes.OutOfRange, "runs past the end"},
		{"file not in the commit", 0, 0, "seg_99999999_0000", codes.NotFound, "is not in commit"},
	} {
		err := streamErr(peer.FetchFile(ctx, &pb.FetchFileRequest{Shard: shardID, PinId: pin.Id, Name: tc.file, Offset: tc.offset, Length: tc.length}))
		requireStatus(t, "FetchFile "+tc.name, err, tc.code, tc.contains)
	}
	err = streamErr(peer.FetchFile(ctx, &pb.FetchFileRequest{Shard: shardID, PinId: "no-such-pin", Name: f.Name}))
	requireStatus(t, "FetchFile under an unknown pin", err, codes.NotFound, "pin the commit again")
	mustv(peer.ReleasePin(ctx, &pb.ReleasePinRequest{PinId: pin.Id}))(t)
}

// TestBadInputOversizeMessages: messages over the 16 MiB bound are refused
// by the receiving side before anything is decoded or written.
func TestBadInputOversizeMessages(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1")
	seed(t, n1, 1, 100, 64, 0)
	st := stateOf(t, n1, shardID)
	ctx := ctxT(t)
	big := make([]byte, transfer.MaxMessageSize+1)
	_, err := n1.shard.Index(ctx, &pb.IndexRequest{Shard: shardID, Docs: []*pb.Doc{{Key: "huge", Value: big}}})
	requireStatus(t, "Index of a 16 MiB document", err, codes.ResourceExhausted, "larger than max")
	_, err = peerClient(t, n1).RenewPin(ctx, &pb.RenewPinRequest{PinId: string(big)})
	requireStatus(t, "RenewPin with a 16 MiB id", err, codes.ResourceExhausted, "larger than max")
	if now := stateOf(t, n1, shardID); now != st {
		t.Fatalf("the shard changed: %v -> %v", st, now)
	}
}

// TestStartRecoveryWhileOneRuns: a second recovery of a shard that is
// being recovered is refused, naming the running one; the running one is
// not disturbed.
func TestStartRecoveryWhileOneRuns(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1", "--throttle", "2MB")
	n2 := c.node("n2")
	seed(t, n1, 2, 1500, 1024, 0)
	ctx := ctxT(t)
	first := mustv(n2.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: shardID, SourceAddress: n1.PeerAddr, RecoveryId: "first"}))(t).Recovery
	_, err := n2.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: shardID, SourceAddress: n1.PeerAddr})
	requireStatus(t, "a second StartRecovery", err, codes.AlreadyExists, "already being recovered by first")
	if rpcerr.Reason(err) != pb.ErrorReason_RECOVERY_RUNNING {
		t.Fatalf("reason %v", rpcerr.Reason(err))
	}
	_, err = n2.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: shardID, SourceAddress: "127.0.0.1:1", RecoveryId: "first"})
	requireStatus(t, "the same id from another source", err, codes.AlreadyExists, "first")
	// The same id and source is the same recovery, not an error.
	again := mustv(n2.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: shardID, SourceAddress: n1.PeerAddr, RecoveryId: "first"}))(t).Recovery
	if again.Id != first.Id {
		t.Fatalf("restarting with the same id returned %s", again.Id)
	}
	r := waitRecovery(t, n2, first.Id)
	requireDone(t, r)
	requireSameCopy(t, n1, n2)
	if l := mustv(n2.rec.ListRecoveries(ctx, &pb.ListRecoveriesRequest{}))(t); len(l.Recoveries) != 1 {
		t.Fatalf("recoveries: %v", l.Recoveries)
	}
}

// TestBadManifests: a snapshot manifest that names a file outside the
// shard, or that was written by a newer version, is never used: the
// recovery takes the peer plan, the reason is recorded, and nothing in the
// repository is deleted.
func TestBadManifests(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node("n1"), c.node("n2")
	snapID := failover(t, n1, n2, 2000)
	key := snapshot.ManifestKey(shardstore.ShardID{Index: shardID.Index, Shard: int(shardID.Shard)}, snapID)
	orig := getObject(t, c, key)
	for i, tc := range []struct {
		name   string
		edit   func(m map[string]any)
		reason string
	}{
		{"file name with a path", func(m map[string]any) { file0(m)["name"] = "../../../shards/logs/0/commit_1" }, "invalid name"},
		{"file name with a NUL", func(m map[string]any) { file0(m)["name"] = "seg\x00x" }, "invalid name"},
		{"blob of another shard", func(m map[string]any) { file0(m)["blob"] = "other/0/blobs/seg_1-abc" }, "is not under logs/0/blobs/"},
		{"blob outside the repository", func(m map[string]any) { file0(m)["blob"] = "../../etc/passwd" }, "is not under logs/0/blobs/"},
		{"newer manifest format", func(m map[string]any) { m["manifest_version"] = 2 }, "manifest_version 2, this build reads 1 to 1"},
		{"newer writer version", func(m map[string]any) { commit(m)["writer_version"] = "9.0.0" }, "written by 9.0.0"},
		{"newer format version", func(m map[string]any) { commit(m)["format_version"] = 9 }, "format 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(orig, &m); err != nil {
				t.Fatal(err)
			}
			tc.edit(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			putObject(t, c, key, b)
			objects := listObjects(t, c)
			target := c.node("t" + string(rune('a'+i)))
			before := scrape(t, target)
			r := recoverOnto(t, target, n2, nil)
			requireDone(t, r)
			requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
			reasons := strings.Join(r.GetPlan().GetReasons(), "\n")
			if !strings.Contains(reasons, tc.reason) {
				t.Fatalf("the plan's reasons do not say %q:\n%s", tc.reason, reasons)
			}
			if len(r.Fallbacks) != 0 || r.GetTotals().GetFromSnapshot().GetBytes() != 0 {
				t.Fatalf("the bad snapshot was used: fallbacks %v, totals %v", r.Fallbacks, r.GetTotals())
			}
			requireSameCopy(t, n2, target)
			requireNoLeftovers(t, target)
			after := scrape(t, target)
			requireMoved(t, before, after, 0, "recoverd_snapshot_download_errors_total")
			requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "done")
			if now := listObjects(t, c); !slices.Equal(now, objects) {
				t.Fatalf("repository objects changed:\nbefore %v\nafter  %v", objects, now)
			}
			target.Stop()
		})
	}
	putObject(t, c, key, orig)
}

func file0(m map[string]any) map[string]any  { return m["files"].([]any)[0].(map[string]any) }
func commit(m map[string]any) map[string]any { return m["commit"].(map[string]any) }

// fakeSource serves the PeerService of a real shard in this process, but
// its FetchFile corrupts every chunk with corrupt.
type fakeSource struct {
	*transfer.PeerServer
	corrupt func(*pb.FileChunk)
}

func (f *fakeSource) FetchFile(req *pb.FetchFileRequest, stream pb.PeerService_FetchFileServer) error {
	return f.PeerServer.FetchFile(req, &corruptingStream{PeerService_FetchFileServer: stream, corrupt: f.corrupt})
}

type corruptingStream struct {
	pb.PeerService_FetchFileServer
	corrupt func(*pb.FileChunk)
}

func (s *corruptingStream) Send(ch *pb.FileChunk) error {
	s.corrupt(ch)
	return s.PeerService_FetchFileServer.Send(ch)
}

// startFakeSource opens a shard with a few segments in this process and
// serves it through a fakeSource; it returns the listen address.
func startFakeSource(t *testing.T, corrupt func(*pb.FileChunk)) string {
	t.Helper()
	reg := embedded.NewRegistry(t.TempDir(), shardstore.Options{}, slog.New(slog.DiscardHandler))
	eng := embedded.New(reg)
	s, err := reg.Create(shardstore.ShardID{Index: shardID.Index, Shard: int(shardID.Shard)}, false)
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		docs := make([]shardstore.Doc, 300)
		for j := range docs {
			docs[j] = shardstore.Doc{Key: strings.Repeat("k", 5) + string(rune('a'+i)) + time.Now().Format("150405.000000000") + string(rune('a'+j%26)) + string(rune('a'+j/26)), Value: make([]byte, 700)}
		}
		if _, err := s.IndexBatch(context.Background(), docs); err != nil {
			eng.Close()
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			eng.Close()
			t.Fatal(err)
		}
	}
	ps := transfer.NewPeerServer(eng, transfer.PeerServerConfig{DisableCompression: true})
	// The fake may send over the bound: the target must refuse it.
	srv := grpc.NewServer(append(transfer.ServerOptions(), grpc.MaxSendMsgSize(4*transfer.MaxMessageSize))...)
	pb.RegisterPeerServiceServer(srv, &fakeSource{PeerServer: ps, corrupt: corrupt})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		srv.Stop()
		ps.Close()
		eng.Close()
	})
	return l.Addr().String()
}

// TestBadPeerChunks: a source that sends chunks with the wrong offset, the
// wrong CRC32C or over the message bound. The target refetches, gives up
// with an error naming the file, and publishes nothing.
func TestBadPeerChunks(t *testing.T) {
	c := newCluster(t)
	// A generous idle timeout: the fake source takes a while to build its
	// oversize message on a loaded machine, and a stream resumed for
	// silence first would hide the refusal this test is about.
	n2 := c.node("n2", "--retry-budget", "2s", "--idle-timeout", "30s")
	for _, tc := range []struct {
		name    string
		corrupt func(*pb.FileChunk)
		want    []string
	}{
		{"offset", func(ch *pb.FileChunk) { ch.Offset += 7 }, []string{"corrupt chunks in a row at offset 0", "expected 0"}},
		{"crc", func(ch *pb.FileChunk) { ch.Crc32C ^= 1 }, []string{"corrupt chunks in a row at offset 0", "CRC32C"}},
		{"oversize", func(ch *pb.FileChunk) { ch.Data = append(ch.Data, make([]byte, transfer.MaxMessageSize)...) }, []string{"at offset 0", "ResourceExhausted", "received message larger than max"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startFakeSource(t, tc.corrupt)
			before := scrape(t, n2)
			tgt := stateOf(t, n2, shardID)
			r := waitRecovery(t, n2, startRecovery(t, n2, addr, nil))
			t.Logf("failed: %s", r.Error)
			requireFailed(t, r, append([]string{"copy files from the source: transfer: file seg_"}, tc.want...)...)
			requireUnchanged(t, n2, shardID, tgt)
			requireNoLeftovers(t, n2)
			after := scrape(t, n2)
			requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "failed")
		})
	}
}
