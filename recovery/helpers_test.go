package recovery

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var shardID = shardstore.ShardID{Index: "logs", Shard: 0}

// dirShards opens shards of one data directory (source or target side).
type dirShards struct {
	dir  string
	opts shardstore.Options
	mu   sync.Mutex
	open map[shardstore.ShardID]*shardstore.Shard
}

func newDirShards(t *testing.T, opts shardstore.Options) *dirShards {
	d := &dirShards{dir: t.TempDir(), opts: opts, open: map[shardstore.ShardID]*shardstore.Shard{}}
	t.Cleanup(func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, s := range d.open {
			s.Close()
		}
	})
	return d
}

// get opens a shard; create makes a missing one, a real (committed) one
// unless uncommitted (a recovery's target).
func (d *dirShards) get(id shardstore.ShardID, create, uncommitted bool) (*shardstore.Shard, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.open[id]; ok {
		return s, nil
	}
	o := d.opts
	o.Create, o.Uncommitted = create, uncommitted
	s, err := shardstore.Open(d.dir, id, o)
	if err != nil {
		return nil, err
	}
	d.open[id] = s
	return s, nil
}

func (d *dirShards) Shard(id shardstore.ShardID) (*shardstore.Shard, error) {
	s, err := d.get(id, false, false)
	if err == nil && !s.Committed() {
		return nil, fmt.Errorf("%w: %w", shardstore.ErrNotFound, shardstore.ErrNoCommit)
	}
	return s, err
}

func (d *dirShards) RemoveUncommitted(id shardstore.ShardID) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.open[id]
	if !ok || s.Committed() {
		return nil
	}
	delete(d.open, id)
	return errors.Join(s.Close(), os.RemoveAll(s.Path()))
}
func (d *dirShards) OpenTarget(id shardstore.ShardID) (*shardstore.Shard, string, error) {
	s, err := d.get(id, true, true)
	return s, "", err
}

// faults injects errors into chosen PeerService methods: fail before the
// call runs, lose the answer after it ran.
type faults struct {
	mu   sync.Mutex
	fail map[string]bool
	next map[string]int // calls still to fail, then the method works
	lose map[string]bool
	hits atomic.Int64
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
			return h(s, ss)
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
	cfg.Targets = e.tgt
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
	s, _, err := e.tgt.OpenTarget(shardID)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func write(t *testing.T, s *shardstore.Shard, n, from, size int) []shardstore.Op {
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
	if req.Shard == (shardstore.ShardID{}) {
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
