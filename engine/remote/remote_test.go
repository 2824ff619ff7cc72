package remote_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/engine/embedded/embeddedtest"
	"github.com/recoverd/recoverd/engine/enginetest"
	"github.com/recoverd/recoverd/engine/remote"
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
	return embeddedtest.Harness(
		func(dir string, o enginetest.Options) (engine.Engine, error) {
			emb, err := embeddedtest.Open(dir, o)
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
		func(e engine.Engine) *embedded.Engine { return e.(*served).emb })
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
