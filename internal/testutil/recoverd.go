package testutil

import (
	"context"
	"fmt"
	"net"
	"net/http"
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
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// RecoverdBinEnv and RecoverctlBinEnv name environment variables pointing at
// prebuilt binaries (the Makefile sets them to bin/); without them the
// binaries are built once per test process from this tree.
const (
	RecoverdBinEnv   = "RECOVERD_BIN"
	RecoverctlBinEnv = "RECOVERCTL_BIN"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binary returns the path of one of this tree's commands ("recoverd" or
// "recoverctl"), from its environment variable or built with go build.
func Binary(t testing.TB, name string) string {
	t.Helper()
	env := map[string]string{"recoverd": RecoverdBinEnv, "recoverctl": RecoverctlBinEnv}[name]
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
		cmd := exec.Command("go", "build", "-o", buildDir+"/", "./cmd/recoverd", "./cmd/recoverctl")
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
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
	cmd  *exec.Cmd
	done chan struct{}
}

// StartNode starts recoverd and waits until its control API answers
// health checks.
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
	// A free port can be taken by another test process between FreeAddr and
	// the daemon's listen: try again on new ports, as StartMinIO does.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		n.GRPCAddr, n.PeerAddr, n.HTTPAddr = FreeAddr(t), FreeAddr(t), FreeAddr(t)
		if err = n.start(); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *Node) start() error {
	args := []string{"--data", n.Data, "--node-id", n.Name, "--grpc-addr", n.GRPCAddr, "--peer-addr", n.PeerAddr,
		"--http-addr", n.HTTPAddr, "--repo", n.opts.Repo}
	if !n.opts.Secure {
		args = append(args, "--insecure")
	}
	args = append(args, n.opts.Args...)
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(n.bin, args...)
	if n.opts.MaxOpenFiles > 0 {
		lim := strconv.Itoa(n.opts.MaxOpenFiles)
		cmd = exec.Command("prlimit", append([]string{"--nofile=" + lim + ":" + lim, "--", n.bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), n.opts.Env...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start recoverd %s: %w", n.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	return n.waitReady(done, 20*time.Second)
}

func (n *Node) waitReady(done <-chan struct{}, timeout time.Duration) error {
	conn, err := grpc.NewClient(n.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("recoverd %s exited at start:\n%s", n.Name, n.LogTail(30))
		default:
		}
		var err error
		if n.opts.Secure {
			// The control API speaks TLS only: ask the plaintext /readyz.
			if err = httpReady(n.HTTPAddr); err == nil {
				return nil
			}
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			var resp *healthpb.HealthCheckResponse
			resp, err = hc.Check(ctx, &healthpb.HealthCheckRequest{})
			cancel()
			if err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("recoverd %s not ready after %v: %v\n%s", n.Name, timeout, err, n.LogTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PID is the process id, 0 when not running.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

func (n *Node) signal(sig syscall.Signal, wait time.Duration) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
	n.mu.Lock()
	n.cmd = nil
	n.mu.Unlock()
}

// Stop sends SIGTERM (graceful shutdown) and waits for the exit.
func (n *Node) Stop() { n.signal(syscall.SIGTERM, 20*time.Second) }

// Kill sends SIGKILL (a crash) and waits for the exit.
func (n *Node) Kill() { n.signal(syscall.SIGKILL, 10*time.Second) }

// Pause stops the process with SIGSTOP; Resume continues it.
func (n *Node) Pause() {
	if pid := n.PID(); pid != 0 {
		syscall.Kill(pid, syscall.SIGSTOP)
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
	if err := n.start(); err != nil {
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
func (n *Node) LogTail(lines int) string { return TailFile(n.LogPath, lines) }

// TailFile returns the last lines of a text file ("" when it cannot be
// read), for error messages that show a process's log.
func TailFile(path string, lines int) string {
	b, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// httpReady asks a node's /readyz once.
func httpReady(addr string) error {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: time.Second}).Get("http://" + addr + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz answered %s", resp.Status)
	}
	return nil
}
