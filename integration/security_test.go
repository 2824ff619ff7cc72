package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
)

// Security with real processes: certificates from `recoverctl certs`,
// nodes started with TLS flags, and callers that lack a certificate, hold
// another CA's, or lack the token, each refused before anything is read or
// written; a recovery between two secure nodes over mutual TLS.

// secPKI is one `recoverctl certs` output directory.
type secPKI struct{ dir string }

func secCerts(t *testing.T, nodes ...string) secPKI {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	cmd := exec.Command(testutil.Binary(t, "recoverctl"), "certs", "--out", dir, "--nodes", strings.Join(nodes, ","), "--days", "1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("recoverctl certs: %v\n%s", err, out)
	}
	return secPKI{dir: dir}
}

func (p secPKI) path(name string) string { return filepath.Join(p.dir, name) }

func (p secPKI) nodeArgs(name string) []string {
	return []string{"--tls-cert", p.path(name + ".pem"), "--tls-key", p.path(name + "-key.pem"),
		"--tls-ca", p.path("ca.pem"), "--token-file", p.path("token")}
}

func (p secPKI) pool(t *testing.T) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(p.path("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("ca.pem holds no certificate")
	}
	return pool
}

func (p secPKI) keyPair(t *testing.T, name string) tls.Certificate {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(p.path(name+".pem"), p.path(name+"-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func (p secPKI) token(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(p.path("token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// secToken sends a bearer token on every call.
type secToken string

func (s secToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(s)}, nil
}
func (secToken) RequireTransportSecurity() bool { return true }

// secDial connects to addr with the given TLS config (nil: plaintext) and
// token ("" sends none).
func secDial(t *testing.T, addr string, tc *tls.Config, token string) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if tc != nil {
		creds = credentials.NewTLS(tc)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(secToken(token)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func secCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// secMetric reads one series (name with its labels as printed) from a
// node's /metrics.
func secMetric(t *testing.T, n *testutil.Node, series string) float64 {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + n.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("%s: no series %s", n.Name, series)
	return 0
}

func requireCode(t *testing.T, what string, err error, want ...codes.Code) {
	t.Helper()
	got := status.Code(err)
	for _, w := range want {
		if got == w {
			return
		}
	}
	t.Fatalf("%s: got %v (%v), want one of %v", what, got, err, want)
}

func TestSecurityRefusalsAndMutualTLSRecovery(t *testing.T) {
	pki := secCerts(t, "n1", "n2")
	rogue := secCerts(t, "n1", "n2") // another CA, same node names
	n1 := testutil.StartNode(t, testutil.NodeOptions{Name: "n1", Secure: true, Args: pki.nodeArgs("n1")})
	n2 := testutil.StartNode(t, testutil.NodeOptions{Name: "n2", Secure: true, Args: pki.nodeArgs("n2")})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("n1 log:\n%s\nn2 log:\n%s", n1.LogTail(30), n2.LogTail(30))
		}
	})
	serverOnly := &tls.Config{RootCAs: pki.pool(t), MinVersion: tls.VersionTLS13}
	token := pki.token(t)
	shard := &pb.ShardId{Index: "secure", Shard: 0}

	// The operator: TLS and the token.
	op1 := pb.NewShardServiceClient(secDial(t, n1.GRPCAddr, serverOnly, token))
	if _, err := op1.CreateShard(secCtx(t), &pb.CreateShardRequest{Shard: shard}); err != nil {
		t.Fatal(err)
	}
	docs := make([]*pb.Doc, 500)
	for i := range docs {
		docs[i] = &pb.Doc{Key: fmt.Sprintf("doc-%05d", i), Value: []byte(strings.Repeat("v", 512))}
	}
	if _, err := op1.Index(secCtx(t), &pb.IndexRequest{Shard: shard, Docs: docs}); err != nil {
		t.Fatal(err)
	}
	if _, err := op1.Flush(secCtx(t), &pb.FlushRequest{Shard: shard}); err != nil {
		t.Fatal(err)
	}
	if _, err := op1.Index(secCtx(t), &pb.IndexRequest{Shard: shard, Docs: docs[:20]}); err != nil { // ops above the commit
		t.Fatal(err)
	}
	before, err := op1.Stats(secCtx(t), &pb.StatsRequest{Shard: shard})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("control API without a token", func(t *testing.T) {
		c := pb.NewShardServiceClient(secDial(t, n1.GRPCAddr, serverOnly, ""))
		_, err := c.Index(secCtx(t), &pb.IndexRequest{Shard: shard, Docs: docs[:1]})
		requireCode(t, "Index without a token", err, codes.Unauthenticated)
		_, err = c.Stats(secCtx(t), &pb.StatsRequest{Shard: shard})
		requireCode(t, "Stats without a token", err, codes.Unauthenticated)
		_, err = pb.NewRecoveryServiceClient(secDial(t, n2.GRPCAddr, serverOnly, "")).ListRecoveries(secCtx(t), &pb.ListRecoveriesRequest{})
		requireCode(t, "ListRecoveries without a token", err, codes.Unauthenticated)
		_, err = pb.NewSnapshotServiceClient(secDial(t, n1.GRPCAddr, serverOnly, "")).ListSnapshots(secCtx(t), &pb.ListSnapshotsRequest{Shard: shard})
		requireCode(t, "ListSnapshots without a token", err, codes.Unauthenticated)
	})
	t.Run("control API with a wrong token", func(t *testing.T) {
		c := pb.NewShardServiceClient(secDial(t, n1.GRPCAddr, serverOnly, rogue.token(t)))
		_, err := c.Index(secCtx(t), &pb.IndexRequest{Shard: shard, Docs: docs[:1]})
		requireCode(t, "Index with a wrong token", err, codes.PermissionDenied)
		_, err = c.Delete(secCtx(t), &pb.DeleteRequest{Shard: shard, Keys: []string{"doc-00001"}})
		requireCode(t, "Delete with a wrong token", err, codes.PermissionDenied)
		_, err = pb.NewRecoveryServiceClient(secDial(t, n2.GRPCAddr, serverOnly, rogue.token(t))).StartRecovery(secCtx(t),
			&pb.StartRecoveryRequest{Shard: shard, SourceAddress: n1.PeerAddr})
		requireCode(t, "StartRecovery with a wrong token", err, codes.PermissionDenied)
	})
	t.Run("control API in plaintext", func(t *testing.T) {
		c := pb.NewShardServiceClient(secDial(t, n1.GRPCAddr, nil, ""))
		_, err := c.Index(secCtx(t), &pb.IndexRequest{Shard: shard, Docs: docs[:1]})
		requireCode(t, "plaintext Index", err, codes.Unavailable)
	})
	t.Run("control API that another CA signed is not trusted by the client", func(t *testing.T) {
		c := pb.NewShardServiceClient(secDial(t, n1.GRPCAddr, &tls.Config{RootCAs: rogue.pool(t), MinVersion: tls.VersionTLS13}, token))
		_, err := c.Stats(secCtx(t), &pb.StatsRequest{Shard: shard})
		requireCode(t, "Stats against an untrusted server", err, codes.Unavailable)
	})
	t.Run("nothing written for refused callers", func(t *testing.T) {
		after, err := op1.Stats(secCtx(t), &pb.StatsRequest{Shard: shard})
		if err != nil {
			t.Fatal(err)
		}
		if after.Stats.Seqno.MaxSeqno != before.Stats.Seqno.MaxSeqno || after.Stats.Generation != before.Stats.Generation {
			t.Fatalf("refused calls changed the shard: before %v, after %v", before.Stats.Seqno, after.Stats.Seqno)
		}
		list, err := pb.NewRecoveryServiceClient(secDial(t, n2.GRPCAddr, serverOnly, token)).ListRecoveries(secCtx(t), &pb.ListRecoveriesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Recoveries) != 0 {
			t.Fatalf("a refused StartRecovery registered %d recoveries", len(list.Recoveries))
		}
	})

	for _, c := range []struct {
		name string
		tc   *tls.Config
	}{
		{"peer API without a client certificate", serverOnly},
		{"peer API with another CA's certificate", &tls.Config{RootCAs: pki.pool(t), Certificates: []tls.Certificate{rogue.keyPair(t, "n2")}, MinVersion: tls.VersionTLS13}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := pb.NewPeerServiceClient(secDial(t, n1.PeerAddr, c.tc, ""))
			_, err := p.GetShardMetadata(secCtx(t), &pb.GetShardMetadataRequest{Shard: shard})
			requireCode(t, "GetShardMetadata", err, codes.Unauthenticated, codes.PermissionDenied)
			_, err = p.PinCommit(secCtx(t), &pb.PinCommitRequest{Shard: shard, Holder: "intruder"})
			requireCode(t, "PinCommit", err, codes.Unauthenticated, codes.PermissionDenied)
			_, err = p.AcquireLease(secCtx(t), &pb.AcquireLeaseRequest{Shard: shard})
			requireCode(t, "AcquireLease", err, codes.Unauthenticated, codes.PermissionDenied)
			stream, err := p.FetchFile(secCtx(t), &pb.FetchFileRequest{Shard: shard, PinId: "any", Name: "seg_1"})
			if err == nil {
				var chunk *pb.FileChunk
				chunk, err = stream.Recv()
				if chunk != nil {
					t.Fatalf("FetchFile sent a chunk of %d bytes to a refused caller", len(chunk.GetData()))
				}
			}
			requireCode(t, "FetchFile", err, codes.Unauthenticated, codes.PermissionDenied)
			ops, err := p.FetchOps(secCtx(t), &pb.FetchOpsRequest{Shard: shard})
			if err == nil {
				var batch *pb.OpBatch
				batch, err = ops.Recv()
				if batch != nil {
					t.Fatalf("FetchOps sent %d ops to a refused caller", len(batch.GetOps()))
				}
			}
			requireCode(t, "FetchOps", err, codes.Unauthenticated, codes.PermissionDenied)
			code, chunks := dataFetch(t, n1.PeerAddr, c.tc, &pb.FetchFileRequest{Shard: shard, PinId: "any", Name: "seg_1"})
			if chunks != 0 || (code != codes.Unauthenticated && code != codes.PermissionDenied) {
				t.Fatalf("FetchFile on a data connection: %d chunks, then %v; want Unauthenticated or PermissionDenied", chunks, code)
			}
		})
	}
	t.Run("nothing read or held for refused peers", func(t *testing.T) {
		for _, s := range []string{"recoverd_peer_sent_bytes_total", "recoverd_peer_sent_ops_total", "recoverd_commit_pins", "recoverd_retention_leases", "recoverd_peer_data_streams_total"} {
			if v := secMetric(t, n1, s); v != 0 {
				t.Errorf("%s = %v after refused peers, want 0", s, v)
			}
		}
	})

	t.Run("recovery between two secure nodes", func(t *testing.T) {
		rec := pb.NewRecoveryServiceClient(secDial(t, n2.GRPCAddr, serverOnly, token))
		resp, err := rec.StartRecovery(secCtx(t), &pb.StartRecoveryRequest{Shard: shard, SourceAddress: n1.PeerAddr})
		if err != nil {
			t.Fatal(err)
		}
		stream, err := rec.WatchRecovery(secCtx(t), &pb.WatchRecoveryRequest{Id: resp.Recovery.Id, MinInterval: durationpb.New(100 * time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		var last *pb.Recovery
		for {
			r, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			last = r.Recovery
		}
		if last.GetStage() != pb.Stage_STAGE_DONE || !last.GetResult().GetMatch() {
			t.Fatalf("recovery over mutual TLS ended %v: %s", last.GetStage(), last.GetError())
		}
		op2 := pb.NewShardServiceClient(secDial(t, n2.GRPCAddr, serverOnly, token))
		d1, err := op1.Digest(secCtx(t), &pb.DigestRequest{Shard: shard})
		if err != nil {
			t.Fatal(err)
		}
		d2, err := op2.Digest(secCtx(t), &pb.DigestRequest{Shard: shard})
		if err != nil {
			t.Fatal(err)
		}
		if d1.Digest != d2.Digest || d1.Seqno.MaxSeqno != d2.Seqno.MaxSeqno {
			t.Fatalf("copies differ: %v vs %v", d1, d2)
		}
		if v := secMetric(t, n1, "recoverd_peer_sent_bytes_total"); v <= 0 {
			t.Fatalf("the source sent %v bytes", v)
		}
		if v := secMetric(t, n1, "recoverd_peer_data_streams_total"); v <= 0 {
			t.Fatalf("the files went on %v data connections: want them there, over mutual TLS", v)
		}
	})
}

// --insecure on an address other than loopback is refused at start: exit
// code 2, a message that says what to do, and nothing listening.
func TestSecurityInsecureRefusedOffLoopback(t *testing.T) {
	bin := testutil.Binary(t, "recoverd")
	port := strings.TrimPrefix(testutil.FreeAddr(t), "127.0.0.1:")
	for _, flag := range []string{"--grpc-addr", "--peer-addr", "--http-addr"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		args := []string{"--data", t.TempDir(), "--insecure", "--repo", "none",
			"--grpc-addr", testutil.FreeAddr(t), "--peer-addr", testutil.FreeAddr(t), "--http-addr", testutil.FreeAddr(t),
			flag, "0.0.0.0:" + port}
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("%s 0.0.0.0: exit %v, want 2\n%s", flag, err, out)
		}
		if !strings.Contains(string(out), "--insecure serves plaintext and is refused on 0.0.0.0:"+port) {
			t.Fatalf("%s 0.0.0.0: message:\n%s", flag, out)
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			c.Close()
			t.Fatalf("something listens on %s after a refused start", port)
		}
	}
	// And without --insecure, TLS flags are required.
	out, err := exec.Command(bin, "--data", t.TempDir(), "--repo", "none").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "TLS is required") {
		t.Fatalf("start without TLS or --insecure: %v\n%s", err, out)
	}
}
