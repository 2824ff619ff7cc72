package integration

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/launch"
	"github.com/recoverd/recoverd/internal/testutil"
)

// A node runs in one of two modes. Embedded: one recoverd process owns
// the shards and serves the document API. Sidecar: shardd (the reference
// engine) owns the shards and serves the document API and EngineService on
// a Unix socket, and recoverd --engine beside it, on the same data
// directory, serves the control and peer APIs.
type mode string

const (
	inProcess mode = "embedded"
	sidecar   mode = "sidecar"
)

// bothModes runs body as two subtests, <test>/embedded and <test>/sidecar,
// each on a cluster of its own. The suite's time is bounded, so only some
// tests run in both modes: the four plans (peer, ops-only, snapshot after a
// failover, hybrid), the source killed for good and the target killed and
// resumed (with sidecar_test.go's faults, which only a sidecar has). The
// repository faults run embedded only: the repository side is the same
// code in both modes. Writes refused while recovering are checked in the
// sidecar mode across a recoverd restart
// (TestSidecarRecoverdKilledWhileEngineWrites).
func bothModes(t *testing.T, body func(t *testing.T, c *cluster)) {
	t.Helper()
	for _, m := range []mode{inProcess, sidecar} {
		t.Run(string(m), func(t *testing.T) { body(t, newClusterIn(t, m)) })
	}
}

// sidecarEngine is a node's shardd: restarted on the same data directory,
// document API address and socket.
type sidecarEngine struct {
	t    *testing.T
	opts launch.SharddOptions
	mu   sync.Mutex
	proc *launch.Shardd
}

func (e *sidecarEngine) start() {
	e.t.Helper()
	sd, err := launch.StartShardd(context.Background(), e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.proc, e.opts.Listen = sd, sd.Listen
	e.mu.Unlock()
}

func (e *sidecarEngine) stop(sig syscall.Signal) {
	e.mu.Lock()
	p := e.proc
	e.proc = nil
	e.mu.Unlock()
	if p != nil {
		p.Stop(sig, 20*time.Second)
	}
}

// sidecarNode starts shardd, then recoverd --engine on its socket, on one
// data directory; the node's document client talks to shardd.
func (c *cluster) sidecarNode(name, data string, args []string) *node {
	c.t.Helper()
	if data == "" {
		data = c.t.TempDir()
	}
	// A Unix socket's path is bounded (108 bytes): t.TempDir() is too deep.
	sockDir, err := os.MkdirTemp("", "sk")
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { os.RemoveAll(sockDir) })
	// The engine's flags go to shardd; recoverd takes them too (unused
	// with --engine), so args stay as the embedded mode's.
	sdArgs, _ := launch.SplitEngineArgs(args)
	e := &sidecarEngine{t: c.t, opts: launch.SharddOptions{Bin: testutil.Binary(c.t, "shardd"), Name: name, Data: data,
		Socket: filepath.Join(sockDir, "engine.sock"), LogPath: filepath.Join(c.t.TempDir(), name+"-shardd.log"), Args: sdArgs}}
	e.start()
	c.t.Cleanup(func() { e.stop(syscall.SIGKILL) }) // after recoverd's (cleanups run last first)
	rd := testutil.StartNode(c.t, testutil.NodeOptions{Name: name, Data: data, Repo: c.repo, Env: c.env,
		Args: append(args, "--engine", "unix://"+e.opts.Socket)})
	c.t.Cleanup(func() {
		if c.t.Failed() {
			c.t.Logf("%s recoverd log tail:\n%s", name, rd.LogTail(40))
			c.t.Logf("%s shardd log tail:\n%s", name, launch.TailFile(e.opts.LogPath, 40))
		}
	})
	n := wrap(rd)
	n.engine = e
	conn, err := grpc.NewClient(e.opts.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	n.shard = pb.NewShardServiceClient(conn)
	return n
}

// Kill crashes the whole node (SIGKILL): recoverd, and shardd in the
// sidecar mode.
func (n *node) Kill() {
	n.Node.Kill()
	n.KillEngine()
}

// Stop stops the whole node gracefully (SIGTERM), recoverd first.
func (n *node) Stop() {
	n.Node.Stop()
	if n.engine != nil {
		n.engine.stop(syscall.SIGTERM)
	}
}

// Restart kills the whole node and starts it again on the same data
// directory and addresses, the engine first.
func (n *node) Restart() {
	n.Node.Kill()
	n.KillEngine()
	if n.engine != nil {
		n.engine.start()
	}
	n.Node.Restart()
}

// KillEngine kills the node's shardd (SIGKILL); nothing when embedded.
func (n *node) KillEngine() {
	if n.engine != nil {
		n.engine.stop(syscall.SIGKILL)
	}
}

// RestartEngine starts the node's shardd again (killing it first if it
// runs) on the same data directory, document API address and socket.
func (n *node) RestartEngine() {
	n.KillEngine()
	n.engine.start()
}
