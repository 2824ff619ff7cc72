package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/engine/remote"
	"github.com/recoverd/recoverd/internal/launch"
	"github.com/recoverd/recoverd/internal/testutil"
)

func start(t *testing.T, bin, data, sock string) *launch.Shardd {
	t.Helper()
	s, err := launch.StartShardd(context.Background(), launch.SharddOptions{Bin: bin, Name: "n1", Data: data, Socket: sock,
		LogPath: filepath.Join(t.TempDir(), "shardd.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(syscall.SIGKILL, 10*time.Second) })
	return s
}

// TestShardd runs the binary: it serves documents on --listen and the
// engine on --socket (mode 0600), refuses a socket a live shardd answers
// on, replaces the one a killed shardd left, keeps its documents across
// the kill, and on SIGTERM exits 0 and removes its socket.
func TestShardd(t *testing.T) {
	ctx := context.Background()
	bin := testutil.Binary(t, "shardd")
	data := t.TempDir()
	sockDir, err := os.MkdirTemp("", "shardd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "engine.sock")
	a := start(t, bin, data, sock)
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("the engine socket: %v, %v; want a socket of mode 0600", fi.Mode(), err)
	}

	// Documents on --listen.
	conn, err := grpc.NewClient(a.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	docs := pb.NewShardServiceClient(conn)
	id := &pb.ShardId{Index: "docs"}
	if _, err := docs.CreateShard(ctx, &pb.CreateShardRequest{Shard: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := docs.Index(ctx, &pb.IndexRequest{Shard: id, Docs: []*pb.Doc{{Key: "a", Value: []byte("1")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := docs.Flush(ctx, &pb.FlushRequest{Shard: id}); err != nil {
		t.Fatal(err)
	}

	// The engine on --socket: the shard, and its files' paths on the volume.
	e, err := remote.Dial(ctx, a.EngineTarget())
	if err != nil {
		t.Fatal(err)
	}
	list, err := e.Shards(ctx)
	if err != nil || len(list) != 1 || list[0].ID != (engine.ShardID{Index: "docs"}) || list[0].State != engine.StateOpen {
		t.Fatalf("the engine lists %v (%v), want docs/0 open", list, err)
	}
	sh, err := e.Shard(ctx, engine.ShardID{Index: "docs"})
	if err != nil {
		t.Fatal(err)
	}
	pin, err := sh.Pin(ctx, engine.PinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range pin.Metadata().Files {
		path, err := pin.Path(f.Name)
		if err != nil || !strings.HasPrefix(path, data) {
			t.Fatalf("pinned %s at %q (%v), want a path under %s", f.Name, path, err, data)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() != f.Length {
			t.Fatalf("pinned file %s: %v", path, err)
		}
	}
	e.Close()

	// A second shardd on the same socket is refused while the first lives.
	out, err := exec.Command(bin, "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--socket", sock).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "another engine answers") {
		t.Fatalf("a second shardd on a live socket: %v\n%s", err, out)
	}

	// Killed, it leaves its socket; the next one replaces it and has the
	// documents.
	a.Stop(syscall.SIGKILL, 10*time.Second)
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("a killed shardd removed its socket? %v", err)
	}
	b := start(t, bin, data, sock)
	conn2, err := grpc.NewClient(b.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	got, err := pb.NewShardServiceClient(conn2).Get(ctx, &pb.GetRequest{Shard: id, Key: "a"})
	if err != nil || !got.Found || string(got.Value) != "1" {
		t.Fatalf("after the kill: %v, %v", got, err)
	}
	e, err = remote.Dial(ctx, b.EngineTarget())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	b.Stop(syscall.SIGTERM, 20*time.Second)
	if code := b.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("SIGTERM: exit %d\n%s", code, b.LogTail(20))
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("the socket is left after a clean exit: %v", err)
	}
}

// TestFlags: bad flags exit 2 with what is wrong.
func TestFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--data is required"},
		{[]string{"--data", t.TempDir(), "--socket-mode", "rw"}, "not an octal file mode"},
		{[]string{"--data", t.TempDir(), "--log-level", "loud"}, "--log-level"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		var out, errw strings.Builder
		if code := run(c.args, &out, &errw); code != 2 || !strings.Contains(errw.String(), c.want) {
			t.Errorf("shardd %q: exit %d, %q; want 2 and %q", c.args, code, errw.String(), c.want)
		}
	}
	var out strings.Builder
	if code := run([]string{"--help"}, &out, &out); code != 0 || !strings.Contains(out.String(), "--socket") {
		t.Errorf("--help: exit %d\n%s", code, out.String())
	}
}
