package remote_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/engine/enginetest"
	"github.com/recoverd/recoverd/engine/remote"
	"github.com/recoverd/recoverd/shardstore"
)

// served is the reference engine behind a socket, as shardd serves it,
// and the client recoverd would hold: the engine the suite sees is the
// client.
type served struct {
	*remote.Client
	emb  *embedded.Engine
	srv  *remote.Server
	done chan error
	dir  string
	once sync.Once
	err  error
}

// Close closes the client, then the server and the engine behind it.
func (s *served) Close() error {
	s.once.Do(func() { s.err = s.close() })
	return s.err
}

func (s *served) close() error {
	err := s.Client.Close()
	s.srv.Stop(context.Background())
	if serr := <-s.done; serr != nil && err == nil {
		err = serr
	}
	if cerr := s.emb.Close(); cerr != nil && err == nil {
		err = cerr
	}
	os.RemoveAll(s.dir)
	return err
}

// openEmbedded opens the reference engine on dataDir.
func openEmbedded(dataDir string, o enginetest.Options) (*embedded.Engine, error) {
	reg := embedded.NewRegistry(dataDir, shardstore.Options{KeepStaging: true, LeaseTTL: o.LeaseTTL, CopyRetention: o.CopyRetention, Failpoint: o.Failpoint},
		slog.New(slog.DiscardHandler))
	if err := reg.OpenAll(); err != nil {
		reg.CloseAll()
		return nil, err
	}
	return embedded.New(reg), nil
}

// serve serves emb on a new socket (short path: a Unix socket's is
// bounded) and dials it.
func serve(emb *embedded.Engine) (*served, error) {
	dir, err := os.MkdirTemp("", "eng")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "engine.sock")
	lis, err := remote.Listen(sock, 0o600)
	if err != nil {
		return nil, err
	}
	srv := remote.NewServer(emb, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	c, err := remote.Dial(context.Background(), "unix://"+sock)
	if err != nil {
		srv.Stop(context.Background())
		return nil, err
	}
	return &served{Client: c, emb: emb, srv: srv, done: done, dir: dir}, nil
}

func harness() enginetest.Harness {
	return enginetest.Harness{
		Replicates: true, // the reference engine behind the socket
		Open: func(_ testing.TB, dir string, o enginetest.Options) (engine.Engine, error) {
			emb, err := openEmbedded(dir, o)
			if err != nil {
				return nil, err
			}
			s, err := serve(emb)
			if err != nil {
				emb.Close()
				return nil, err
			}
			return s, nil
		},
		Index: func(ctx context.Context, e engine.Engine, id engine.ShardID, n int) error {
			s, err := e.(*served).emb.Registry().Shard(id)
			if err != nil {
				return err
			}
			docs := make([]shardstore.Doc, n)
			for i := range docs {
				docs[i] = shardstore.Doc{Key: fmt.Sprintf("primary-%d", i), Value: []byte("v")}
			}
			_, err = s.IndexBatch(ctx, docs)
			return err
		},
		Damage: func(t testing.TB, dir string, id engine.ShardID) {
			commit := newestCommit(t, dir, id)
			b, err := os.ReadFile(commit)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(commit, b, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		Unreadable: func(t testing.TB, dir string, id engine.ShardID) func() {
			commit := newestCommit(t, dir, id)
			if err := os.Rename(commit, commit+".aside"); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(commit, 0o755); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := os.Remove(commit); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(commit+".aside", commit); err != nil {
					t.Fatal(err)
				}
			}
		},
		PublishFailpoints: failpoints,
	}
}

// failpoints are the reference engine's across a Publish.
var failpoints = []enginetest.Failpoint{
	{Name: "publish.before-rename"}, {Name: "publish.files-moved"}, {Name: "publish.before-commit"},
	{Name: "publish.after-commit", Committed: true},
}

func newestCommit(t testing.TB, dir string, id engine.ShardID) string {
	t.Helper()
	commits, err := filepath.Glob(filepath.Join(shardstore.Dir(dir, id), "commit_*"))
	if err != nil || len(commits) == 0 {
		t.Fatalf("no commit point of %s: %v", id, err)
	}
	slices.Sort(commits)
	return commits[len(commits)-1]
}

func TestMain(m *testing.M) {
	enginetest.RunChild(harness())
	runProcessChild()
	goleak.VerifyTestMain(m)
}

// TestAcceptance runs the engine contract's acceptance suite on the remote
// client: client, socket, server, and the reference engine behind it.
func TestAcceptance(t *testing.T) { enginetest.Run(t, harness()) }

var ctx = context.Background()

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened", what)
		}
	}
}
