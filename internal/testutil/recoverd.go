package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/recoverd/recoverd/internal/launch"
)

// RecoverdBinEnv and RecoverctlBinEnv name environment variables pointing at
// prebuilt binaries (the Makefile sets them to bin/); without them the
// binaries are built once per test process from this tree.
const (
	RecoverdBinEnv   = "RECOVERD_BIN"
	RecoverctlBinEnv = "RECOVERCTL_BIN"
	SharddBinEnv     = "RECOVERD_SHARDD_BIN"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binary returns the path of one of this tree's commands ("recoverd",
// "recoverctl" or "shardd"), from its environment variable or built with go
// build.
func Binary(t testing.TB, name string) string {
	t.Helper()
	env := map[string]string{"recoverd": RecoverdBinEnv, "recoverctl": RecoverctlBinEnv, "shardd": SharddBinEnv}[name]
	if p := os.Getenv(env); p != "" {
		if !isExecutable(p) {
			t.Fatalf("%s=%s is not an executable file", env, p)
		}
		return p
	}
	buildOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		removeStaleBuilds()
		buildDir = filepath.Join(os.TempDir(), fmt.Sprintf("%s%d", buildPrefix, os.Getpid()))
		if buildErr = os.MkdirAll(buildDir, 0o755); buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+"/", "./cmd/recoverd", "./cmd/recoverctl", "./cmd/shardd")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building the binaries: %v", buildErr)
	}
	return filepath.Join(buildDir, name)
}

// buildPrefix names the directories the binaries are built into, one per
// test process (suffixed with its PID).
const buildPrefix = "recoverd-test-bin-"

// removeStaleBuilds deletes the build directories of test processes that
// have exited: a test binary has no hook to clean up after its last test.
func removeStaleBuilds() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), buildPrefix+"*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), buildPrefix))
		if err == nil && pid > 0 && syscall.Kill(pid, 0) != syscall.ESRCH {
			continue // still running (or not ours to judge)
		}
		os.RemoveAll(d)
	}
}

// FreeAddr returns a free 127.0.0.1:port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := launch.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// NodeOptions configure a recoverd node started for a test.
type NodeOptions struct {
	Name string
	// Data is the data directory; empty means a new t.TempDir().
	Data string
	// Repo is the repository URL (default: none).
	Repo string
	// Env is added to the process environment (e.g. RECOVERD_S3_*).
	Env []string
	// Args are extra flags.
	Args []string
	// Secure leaves out --insecure (the caller passes TLS flags in Args).
	Secure bool
	// MaxOpenFiles, when set, starts the process with RLIMIT_NOFILE set to
	// it, soft and hard (through prlimit(1), which execs recoverd: the PID
	// is recoverd's), so that it runs out of descriptors for real.
	MaxOpenFiles int
}

// Node is a recoverd process started for a test; t.Cleanup stops it by PID.
type Node struct {
	Name                         string
	Data                         string
	GRPCAddr, PeerAddr, HTTPAddr string
	LogPath                      string

	t    testing.TB
	bin  string
	opts NodeOptions
	mu   sync.Mutex
	proc *launch.Process
}

// StartNode starts recoverd (launch.StartRecoverd, on free loopback ports)
// and waits until it serves.
func StartNode(t testing.TB, opts NodeOptions) *Node {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "node"
	}
	if opts.Data == "" {
		opts.Data = t.TempDir()
	}
	if opts.Repo == "" {
		opts.Repo = "none"
	}
	n := &Node{Name: opts.Name, Data: opts.Data, t: t, bin: Binary(t, "recoverd"), opts: opts,
		LogPath: filepath.Join(t.TempDir(), opts.Name+".log")}
	t.Cleanup(n.Kill)
	if err := n.start(launch.Listeners{}); err != nil {
		t.Fatal(err)
	}
	return n
}

// start starts the process on l (free ports when l is zero).
func (n *Node) start(l launch.Listeners) error {
	o := launch.RecoverdOptions{Bin: n.bin, Name: n.Name, Data: n.Data, LogPath: n.LogPath, Listeners: l,
		Secure: n.opts.Secure, Args: append([]string{"--repo", n.opts.Repo}, n.opts.Args...), Env: append(os.Environ(), n.opts.Env...)}
	if n.opts.MaxOpenFiles > 0 {
		lim := strconv.Itoa(n.opts.MaxOpenFiles)
		o.Command = func(bin string, args ...string) *exec.Cmd {
			return exec.Command("prlimit", append([]string{"--nofile=" + lim + ":" + lim, "--", bin}, args...)...)
		}
	}
	rd, err := launch.StartRecoverd(context.Background(), o)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.proc = rd.Process
	n.GRPCAddr, n.PeerAddr, n.HTTPAddr = rd.GRPC, rd.Peer, rd.HTTP
	n.mu.Unlock()
	return nil
}

// PID is the process id, 0 when not running.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return 0
	}
	return n.proc.PID()
}

func (n *Node) signal(sig syscall.Signal, wait time.Duration) {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		return
	}
	p.Stop(sig, wait)
	n.mu.Lock()
	n.proc = nil
	n.mu.Unlock()
}

// Stop sends SIGTERM (graceful shutdown) and waits for the exit.
func (n *Node) Stop() { n.signal(syscall.SIGTERM, 20*time.Second) }

// Kill sends SIGKILL (a crash) and waits for the exit.
func (n *Node) Kill() { n.signal(syscall.SIGKILL, 10*time.Second) }

// Pause stops the process with SIGSTOP, and returns once every thread of
// it is stopped; Resume continues it.
func (n *Node) Pause() {
	if pid := n.PID(); pid != 0 {
		if err := stopProcess(pid); err != nil {
			n.t.Fatalf("testutil: pause %s: %v", n.Name, err)
		}
	}
}

// Resume continues a paused process.
func (n *Node) Resume() {
	if pid := n.PID(); pid != 0 {
		syscall.Kill(pid, syscall.SIGCONT)
	}
}

// Restart starts the node again on the same data directory and addresses.
func (n *Node) Restart() {
	n.t.Helper()
	n.Kill()
	if err := n.start(launch.Listeners{GRPC: n.GRPCAddr, Peer: n.PeerAddr, HTTP: n.HTTPAddr}); err != nil {
		n.t.Fatal(err)
	}
}

// Dial returns a client connection to the control API.
func (n *Node) Dial() *grpc.ClientConn {
	n.t.Helper()
	conn, err := grpc.NewClient(n.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { conn.Close() })
	return conn
}

// LogTail returns the last lines of the node's log.
func (n *Node) LogTail(lines int) string { return launch.TailFile(n.LogPath, lines) }
