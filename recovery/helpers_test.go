package recovery

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var shardID = engine.ShardID{Index: "logs", Shard: 0}

// dirShards is the engine of one side (source or target): the reference
// engine in process over one data directory, as recoverd runs it. drop
// replaces it with a new one over the same directory.
type dirShards struct {
	dir  string
	opts shardstore.Options
	mu   sync.Mutex
	eng  *embedded.Engine
}

var _ engine.Engine = (*dirShards)(nil)

func newDirShards(t *testing.T, opts shardstore.Options) *dirShards {
	d := &dirShards{dir: t.TempDir(), opts: opts}
	d.eng = d.open()
	t.Cleanup(func() { d.cur().Close() })
	return d
}

func (d *dirShards) open() *embedded.Engine {
	opts := d.opts
	opts.KeepStaging = true
	return embedded.New(embedded.NewRegistry(d.dir, opts, slog.New(slog.DiscardHandler)))
}

func (d *dirShards) cur() *embedded.Engine {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.eng
}

// get opens a shard through the engine's registry; create makes a
// missing one, a real (committed) one unless uncommitted (a recovery's
// target).
func (d *dirShards) get(id engine.ShardID, create, uncommitted bool) (*shardstore.Shard, error) {
	reg := d.cur().Registry()
	switch {
	case uncommitted:
		s, _, err := reg.OpenTarget(id)
		return s, err
	case create:
		return reg.Create(id, true)
	}
	return reg.Shard(id)
}

func (d *dirShards) Version() engine.Version { return d.cur().Version() }
func (d *dirShards) Shards(ctx context.Context) ([]engine.ShardStatus, error) {
	return d.cur().Shards(ctx)
}
func (d *dirShards) Shard(ctx context.Context, id engine.ShardID) (engine.Shard, error) {
	return d.cur().Shard(ctx, id)
}
func (d *dirShards) OpenTarget(ctx context.Context, id engine.ShardID) (engine.Target, string, error) {
	return d.cur().OpenTarget(ctx, id)
}
func (d *dirShards) RemoveUncommitted(ctx context.Context, id engine.ShardID) error {
	return d.cur().RemoveUncommitted(ctx, id)
}
func (d *dirShards) SweepUncommitted(ctx context.Context, keep map[engine.ShardID]bool) ([]engine.ShardID, error) {
	return d.cur().SweepUncommitted(ctx, keep)
}
func (d *dirShards) RefuseWrites(ctx context.Context, id engine.ShardID, recoveryID string) error {
	return d.cur().RefuseWrites(ctx, id, recoveryID)
}
func (d *dirShards) ResumeWrites(ctx context.Context, id engine.ShardID, recoveryID string) error {
	return d.cur().ResumeWrites(ctx, id, recoveryID)
}
func (d *dirShards) Close() error { return d.cur().Close() }

// faults injects errors into chosen PeerService methods: fail before the
// call runs, lose the answer after it ran.
type faults struct {
	mu   sync.Mutex
	fail map[string]bool
	next map[string]int // calls still to fail, then the method works
	lose map[string]bool
	hang map[string]bool
	hits atomic.Int64
	// change, when set, may change each message a stream of method sends.
	change func(method string, m any)
}

// changed passes a message a stream sends through change.
func (f *faults) changed(method string, m any) {
	f.mu.Lock()
	change := f.change
	f.mu.Unlock()
	if change != nil {
		change(method, m)
	}
}

// changeStream is a server stream whose messages go through faults.change.
type changeStream struct {
	grpc.ServerStream
	method string
	f      *faults
}

func (s *changeStream) SendMsg(m any) error {
	s.f.changed(s.method, m)
	return s.ServerStream.SendMsg(m)
}

// hangOn makes method's calls hang until their caller gives up.
func (f *faults) hangOn(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hang == nil {
		f.hang = map[string]bool{}
	}
	f.hang[method] = true
}

func (f *faults) hangs(method string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hang[method] {
		f.hits.Add(1)
	}
	return f.hang[method]
}

func (f *faults) loseAnswers(method string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lose == nil {
		f.lose = map[string]bool{}
	}
	f.lose[method] = on
}

func (f *faults) lost(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lose[method] {
		f.hits.Add(1)
		return status.Error(codes.Unavailable, "injected fault: answer lost")
	}
	return nil
}

func (f *faults) set(method string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[string]bool{}
	}
	f.fail[method] = on
}

// failNext fails the next n calls of method, whenever they come.
func (f *faults) failNext(method string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next == nil {
		f.next = map[string]int{}
	}
	f.next[method] = n
}

func (f *faults) check(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next[method] > 0 {
		f.next[method]--
		f.hits.Add(1)
		return status.Error(codes.Unavailable, "injected fault")
	}
	if f.fail[method] {
		f.hits.Add(1)
		return status.Error(codes.Unavailable, "injected fault")
	}
	return nil
}

type env struct {
	t      *testing.T
	src    *dirShards
	tgt    *dirShards
	repo   *snapshot.LocalRepository
	addr   string
	faults *faults
	m      *Manager
	peer   *transfer.PeerServer
}

// newEnv serves the source's shards on a loopback gRPC listener and builds
// a manager for the target.
func newEnv(t *testing.T, srcOpts shardstore.Options, cfg Config) *env {
	e := &env{t: t, src: newDirShards(t, srcOpts), tgt: newDirShards(t, shardstore.Options{}), faults: &faults{}}
	var err error
	if e.repo, err = snapshot.NewLocalRepository(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	peer := transfer.NewPeerServer(e.src, transfer.PeerServerConfig{})
	e.peer = peer
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := e.faults.check(info.FullMethod); err != nil {
				return nil, err
			}
			if e.faults.hangs(info.FullMethod) {
				<-ctx.Done() // the source hangs until the caller gives up
				return nil, ctx.Err()
			}
			resp, err := h(ctx, req)
			if err == nil {
				err = e.faults.lost(info.FullMethod)
			}
			return resp, err
		}),
		grpc.StreamInterceptor(func(s any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := e.faults.check(info.FullMethod); err != nil {
				return err
			}
			return h(s, &changeStream{ServerStream: ss, method: info.FullMethod, f: e.faults})
		}))
	pb.RegisterPeerServiceServer(srv, peer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	go srv.Serve(l)
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	cfg.NodeID = "target"
	cfg.Engine = e.tgt
	cfg.Dial = func(context.Context, string) (pb.PeerServiceClient, error) { return pb.NewPeerServiceClient(conn), nil }
	if cfg.Repo == nil {
		cfg.Repo = e.repo
	}
	cfg.UseSnapshots = true
	if cfg.VerifyDigest == "" {
		cfg.VerifyDigest = DigestAlways
	}
	if cfg.Fetch.Retry.MaxElapsed == 0 {
		cfg.Fetch.Retry = retry.Options{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, MaxElapsed: 2 * time.Second}
	}
	cfg.Ops.Retry = cfg.Fetch.Retry
	if cfg.NewDownloader == nil {
		cfg.NewDownloader = func() *snapshot.Downloader {
			return &snapshot.Downloader{Retry: retry.Options{Initial: 10 * time.Millisecond, MaxElapsed: time.Second}}
		}
	}
	e.m = NewManager(cfg)
	t.Cleanup(func() {
		e.m.Close()
		conn.Close()
		srv.Stop()
		peer.Close()
	})
	return e
}

func (e *env) source() *shardstore.Shard {
	s, err := e.src.get(shardID, true, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) target() *shardstore.Shard {
	s, err := e.tgt.get(shardID, false, true)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func write(t *testing.T, s *shardstore.Shard, n, from, size int) []engine.Op {
	t.Helper()
	docs := make([]shardstore.Doc, n)
	for i := range docs {
		v := make([]byte, size) // random: incompressible, so throttles bite
		rand.Read(v)
		docs[i] = shardstore.Doc{Key: fmt.Sprintf("k%07d", from+i), Value: v}
	}
	ops, err := s.IndexBatch(context.Background(), docs)
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

func flush(t *testing.T, s *shardstore.Shard) {
	t.Helper()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

func digest(t *testing.T, s *shardstore.Shard) string {
	t.Helper()
	d, err := s.Digest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (e *env) run(req StartRequest) State {
	e.t.Helper()
	if req.Shard == (engine.ShardID{}) {
		req.Shard = shardID
	}
	req.Source = e.addr
	r, err := e.m.Start(req)
	if err != nil {
		e.t.Fatal(err)
	}
	select {
	case <-r.Done():
	case <-time.After(time.Minute):
		e.t.Fatal("recovery did not finish in a minute")
	}
	s, _ := r.State()
	return s
}

func requireDone(t *testing.T, s State) {
	t.Helper()
	if s.Stage != StageDone || s.Result == nil || !s.Result.Match {
		t.Fatalf("recovery ended %s: %s (result %+v)", s.Stage, s.Error, s.Result)
	}
}

func noStaging(t *testing.T, s *shardstore.Shard) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(s.Path(), "staging"))
	if len(entries) > 0 {
		t.Fatalf("staging left: %d entries", len(entries))
	}
}

func contains(s, sub string) bool { return len(sub) == 0 || len(s) >= len(sub) && indexOf(s, sub) >= 0 }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
