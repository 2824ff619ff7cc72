package remote_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/engine/embedded/embeddedtest"
	"github.com/recoverd/recoverd/engine/enginetest"
	"github.com/recoverd/recoverd/engine/remote"
)

// TestEngineRestart: when the engine behind the socket restarts, the
// client's handles of the old session answer ErrClosed (ask again), its
// pins ErrPinLost, and asking again reaches the new engine through a new
// session, with the data the old one committed.
func TestEngineRestart(t *testing.T) {
	data := t.TempDir()
	sockDir, err := os.MkdirTemp("", "eng")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "engine.sock")
	start := func() (stop func()) {
		emb, err := embeddedtest.Open(data, enginetest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		lis, err := remote.Listen(sock, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		srv := remote.NewServer(emb, slog.New(slog.DiscardHandler))
		done := make(chan error, 1)
		go func() { done <- srv.Serve(lis) }()
		return func() {
			srv.Stop(ctx)
			if err := <-done; err != nil {
				t.Error(err)
			}
			emb.Close()
		}
	}
	stop := start()
	c, err := remote.Dial(ctx, "unix://"+sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tgt := create(t, c, sid("docs"))
	apply(t, tgt, 0, 10)
	flush(t, tgt)
	pin, err := tgt.Pin(ctx, engine.PinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := digest(t, tgt)
	stop()

	stop = start()
	defer stop()
	if _, err := tgt.Info(ctx); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("a handle of the old session: %v, want ErrClosed", err)
	}
	// The client learns of the session's end from its stream, at once but
	// asynchronously.
	eventually(t, "a pin of the old session answering ErrPinLost", func() bool {
		_, err := pin.Path(pin.Metadata().Files[0].Name)
		return errors.Is(err, engine.ErrPinLost)
	})
	var sh engine.Shard
	eventually(t, "the client reaching the restarted engine", func() bool {
		sh, err = c.Shard(ctx, sid("docs"))
		return err == nil
	})
	if digest(t, sh) != before {
		t.Fatal("the restarted engine lost what the old one committed")
	}
}
