package transfer

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/shardstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// engines maps the source shards the tests create to the in-process
// engine that holds each: the peer server serves them through it.
var engines sync.Map // *shardstore.Shard -> *embedded.Engine

// engineOf is the engine holding src (newSourceShard).
func engineOf(t testing.TB, src *shardstore.Shard) *embedded.Engine {
	t.Helper()
	e, ok := engines.Load(src)
	if !ok {
		t.Fatalf("shard %s was not opened by newSourceShard", src.ID())
	}
	return e.(*embedded.Engine)
}

// emptyEngine is an engine holding no shard.
func emptyEngine(t testing.TB) *embedded.Engine {
	t.Helper()
	e := embedded.New(embedded.NewRegistry(t.TempDir(), shardstore.Options{}, slog.New(slog.DiscardHandler)))
	t.Cleanup(func() { e.Close() })
	return e
}

var testShard = shardstore.ShardID{Index: "books", Shard: 3}

func pbShard() *pb.ShardId { return pbconv.ShardID(testShard) }

var words = strings.Fields(`the quick brown fox jumps over a lazy dog while storage nodes
recover shard copies from peers and snapshots with sequence numbers checkpoints leases
segments commits files bytes chunks streams retries throttles windows compression`)

// textValue is compressible, text-like data.
func textValue(r *rand.Rand, size int) []byte {
	var b strings.Builder
	for b.Len() < size {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(' ')
	}
	return []byte(b.String()[:size])
}

// randomValue does not compress.
func randomValue(r *rand.Rand, size int) []byte {
	b := make([]byte, size)
	for i := 0; i+8 <= size; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

type sourceSpec struct {
	docs      int
	valueSize int
	random    bool // random (incompressible) values, else text
	flushes   int  // segments written (at least 1)
	opts      shardstore.Options
}

// newSourceShard creates a shard under dir with spec.docs documents spread
// over spec.flushes segments, everything flushed.
func newSourceShard(t testing.TB, dir string, spec sourceSpec) *shardstore.Shard {
	t.Helper()
	reg := embedded.NewRegistry(dir, spec.opts, slog.New(slog.DiscardHandler))
	s, err := reg.Create(testShard, true)
	if err != nil {
		t.Fatal(err)
	}
	e := embedded.New(reg)
	engines.Store(s, e)
	t.Cleanup(func() { e.Close(); engines.Delete(s) })
	r := rand.New(rand.NewPCG(1, uint64(spec.docs)))
	flushes := max(spec.flushes, 1)
	per := (spec.docs + flushes - 1) / flushes
	ctx := context.Background()
	for i := 0; i < spec.docs; {
		end := min(i+per, spec.docs)
		for i < end {
			var docs []shardstore.Doc
			for ; i < end && len(docs) < 500; i++ {
				v := textValue(r, spec.valueSize)
				if spec.random {
					v = randomValue(r, spec.valueSize)
				}
				docs = append(docs, shardstore.Doc{Key: fmt.Sprintf("doc-%08d", i), Value: v})
			}
			if _, err := s.IndexBatch(ctx, docs); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

type env struct {
	src    *shardstore.Shard
	srv    *PeerServer
	client pb.PeerServiceClient
	addr   string
}

type envOpts struct {
	cfg    PeerServerConfig
	tcp    bool
	server []grpc.ServerOption
	// grpcDefaults leaves out ServerOptions and DialOptions (benchmarks).
	grpcDefaults bool
	// data serves data connections on the listener (tcp only), with
	// dataCfg (its TLS is serverTLS), and gives the client a data dialer
	// (dataconn.go).
	data    bool
	dataCfg DataConfig
	// serverTLS and clientTLS secure both gRPC and data connections.
	serverTLS, clientTLS *tls.Config
}

// startEnv serves src through a PeerServer on a bufconn (or, with tcp, on
// 127.0.0.1) and returns a client connected to it.
func startEnv(t testing.TB, src *shardstore.Shard, o envOpts) *env {
	t.Helper()
	srv := NewPeerServer(engineOf(t, src), o.cfg)
	sopts, dopts := ServerOptions(), DialOptions()
	if o.grpcDefaults {
		sopts, dopts = nil, nil
	}
	if o.serverTLS != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(o.serverTLS)))
	}
	gs := grpc.NewServer(append(sopts, o.server...)...)
	pb.RegisterPeerServiceServer(gs, srv)
	var (
		lis  net.Listener
		dial []grpc.DialOption
		addr string
	)
	if o.tcp {
		var err error
		if lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		addr = lis.Addr().String()
	} else {
		bl := bufconn.Listen(8 << 20)
		lis, addr = bl, "passthrough:///bufconn"
		dial = append(dial, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return bl.DialContext(ctx) }))
	}
	if o.data {
		cfg := o.dataCfg
		cfg.TLS = o.serverTLS
		lis = srv.DataListener(lis, cfg)
	}
	go gs.Serve(lis)
	creds := insecure.NewCredentials()
	if o.clientTLS != nil {
		creds = credentials.NewTLS(o.clientTLS)
	}
	dial = append(append(dial, dopts...), grpc.WithTransportCredentials(creds))
	conn, err := grpc.NewClient(addr, dial...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
		if err := srv.Close(); err != nil {
			t.Errorf("close peer server: %v", err)
		}
	})
	e := &env{src: src, srv: srv, client: pb.NewPeerServiceClient(conn), addr: addr}
	if o.data {
		e.client = peerClient{PeerServiceClient: e.client, data: &dataDialer{addr: addr, tls: o.clientTLS}}
	}
	return e
}

// newTarget opens an empty shard to recover into and starts a staging.
func newTarget(t testing.TB, recoveryID string) (*shardstore.Shard, *stage) {
	t.Helper()
	s, err := shardstore.Open(t.TempDir(), testShard, shardstore.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	st, err := startStage(s, recoveryID)
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

// hookSends is a stream interceptor calling hook for every message the
// handler of method sends; hook may change the message or fail the send.
// call numbers the streams of method from 1.
func hookSends(method string, hook func(call int, n int, m any) error) grpc.ServerOption {
	var mu sync.Mutex
	calls := 0
	return grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !strings.HasSuffix(info.FullMethod, "/"+method) {
			return handler(srv, ss)
		}
		mu.Lock()
		calls++
		call := calls
		mu.Unlock()
		return handler(srv, &hookStream{ServerStream: ss, hook: func(n int, m any) error { return hook(call, n, m) }})
	})
}

type hookStream struct {
	grpc.ServerStream
	n    int
	hook func(n int, m any) error
}

func (h *hookStream) SendMsg(m any) error {
	h.n++
	if err := h.hook(h.n, m); err != nil {
		return err
	}
	return h.ServerStream.SendMsg(m)
}

func mustDigest(t testing.TB, s *shardstore.Shard) string {
	t.Helper()
	d, err := s.Digest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
