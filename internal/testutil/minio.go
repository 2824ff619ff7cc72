package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIOVersion is the MinIO server version the tests run, built from the Go
// module proxy by `make minio`.
const MinIOVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

// MinIOBinEnv names the environment variable that points at a MinIO binary.
const MinIOBinEnv = "RECOVERD_MINIO_BIN"

// MinIO is a MinIO server process started for a test.
type MinIO struct {
	// Endpoint is host:port on 127.0.0.1 (no scheme; plain HTTP).
	Endpoint string
	// AccessKey and SecretKey are the random root credentials.
	AccessKey string
	SecretKey string
	// DataDir is the server's data directory.
	DataDir string

	t       testing.TB
	bin     string
	port    int
	console int
	logPath string
	env     []string
	// drives are the server's drive arguments (nil: DataDir alone); a
	// member of a distributed cluster names every member's drive.
	drives []string
	// readyPath is the health endpoint start waits for (default
	// /minio/health/ready).
	readyPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// FindMinIO returns the path of the MinIO binary: $RECOVERD_MINIO_BIN, else
// <repo root>/bin/minio, else ~/.cache/recoverd/minio-<version>/minio.
func FindMinIO() (string, error) {
	var tried []string
	if p := os.Getenv(MinIOBinEnv); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("testutil: %s=%s is not an executable file", MinIOBinEnv, p)
	}
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, "bin", "minio")
		if isExecutable(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "recoverd", "minio-"+MinIOVersion, "minio")
		if isExecutable(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("testutil: MinIO binary not found (looked at $%s, %s); run `make minio` in the repository root to build it from the Go module proxy (go install github.com/minio/minio@%s)",
		MinIOBinEnv, strings.Join(tried, ", "), MinIOVersion)
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testutil: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// StartMinIO starts a MinIO server for the test and waits until it is
// ready. The test fails (it is never skipped) when the binary is missing.
// The server is killed when the test ends.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	return StartMinIOWith(t, MinIOOptions{})
}

// MinIOOptions tune a test server.
type MinIOOptions struct {
	// Env adds NAME=value settings to the server's environment, e.g.
	// MINIO_API_REQUESTS_MAX=1 to make it answer 503 SlowDown under load.
	Env []string
}

// StartMinIOWith is StartMinIO with options.
func StartMinIOWith(t testing.TB, opts MinIOOptions) *MinIO {
	t.Helper()
	bin, err := FindMinIO()
	if err != nil {
		t.Fatal(err)
	}
	m := &MinIO{
		t:         t,
		env:       opts.Env,
		bin:       bin,
		AccessKey: "u" + randomHex(8),
		SecretKey: "s" + randomHex(16),
		DataDir:   filepath.Join(t.TempDir(), "data"),
	}
	m.logPath = filepath.Join(filepath.Dir(m.DataDir), "minio.log")
	t.Cleanup(func() {
		m.kill()
		if t.Failed() {
			t.Logf("MinIO log tail:\n%s", m.LogTail(4096))
		}
	})
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if m.port, err = freePort(); err != nil {
			t.Fatal(err)
		}
		if m.console, err = freePort(); err != nil {
			t.Fatal(err)
		}
		m.Endpoint = net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port))
		if lastErr = m.start(); lastErr == nil {
			return m
		}
		m.kill()
	}
	t.Fatalf("testutil: MinIO did not start: %v\nlog:\n%s", lastErr, m.LogTail(4096))
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testutil: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start launches the process on m.port and waits until it is ready.
func (m *MinIO) start() error {
	done, err := m.launch()
	if err != nil {
		return err
	}
	return m.waitReady(done, 30*time.Second)
}

// launch starts the process on m.port without waiting; the channel is
// closed when it exits.
func (m *MinIO) launch() (<-chan struct{}, error) {
	if err := os.MkdirAll(m.DataDir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	base := filepath.Dir(m.DataDir)
	drives := m.drives
	if len(drives) == 0 {
		drives = []string{m.DataDir}
	}
	cmd := exec.Command(m.bin, append([]string{"server", "--quiet",
		"--address", m.Endpoint,
		"--console-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(m.console)),
		"--certs-dir", filepath.Join(base, "certs")},
		drives...)...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + base,
		"MINIO_ROOT_USER=" + m.AccessKey,
		"MINIO_ROOT_PASSWORD=" + m.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CALLHOME_ENABLE=off",
		"MINIO_SCANNER_SPEED=slowest",
		"GOMAXPROCS=2",
	}
	cmd.Env = append(cmd.Env, m.env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Own process group, so a signal to the test runner's group does not
	// reach it, and it does not outlive us through inheritance.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testutil: start %s: %w", m.bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	return done, nil
}

func (m *MinIO) waitReady(done <-chan struct{}, timeout time.Duration) error {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	path := m.readyPath
	if path == "" {
		path = "/minio/health/ready"
	}
	url := "http://" + m.Endpoint + path
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("testutil: MinIO exited during startup")
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("testutil: MinIO not ready at %s after %v", url, timeout)
}

// PID is the server's process id (0 when it is not running).
func (m *MinIO) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// URL is the server's base URL, http://127.0.0.1:port.
func (m *MinIO) URL() string { return "http://" + m.Endpoint }

// running returns the server's process; a test asking for one that is
// not running fails.
func (m *MinIO) running() *os.Process {
	m.t.Helper()
	m.mu.Lock()
	cmd := m.cmd
	m.mu.Unlock()
	if cmd == nil {
		m.t.Fatalf("testutil: MinIO is not running")
	}
	return cmd.Process
}

func (m *MinIO) signal(sig syscall.Signal) {
	m.t.Helper()
	if err := m.running().Signal(sig); err != nil {
		m.t.Fatalf("testutil: signal MinIO: %v", err)
	}
}

// Pause stops the process with SIGSTOP, and returns once every thread of
// it is stopped: connections stay open, nothing answers.
func (m *MinIO) Pause() {
	m.t.Helper()
	if err := stopProcess(m.running().Pid); err != nil {
		m.t.Fatalf("testutil: pause MinIO: %v", err)
	}
}

// Resume continues a paused process with SIGCONT.
func (m *MinIO) Resume() { m.t.Helper(); m.signal(syscall.SIGCONT) }

// Stop terminates the server gracefully (SIGTERM, then SIGKILL after 10s)
// and waits for it to exit.
func (m *MinIO) Stop() {
	m.t.Helper()
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	m.mu.Lock()
	m.cmd = nil
	m.mu.Unlock()
}

// Kill kills the server with SIGKILL and waits for it to exit.
func (m *MinIO) Kill() { m.kill() }

func (m *MinIO) kill() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same port and data directory
// (killing it first if it still runs) and waits until it is ready.
func (m *MinIO) Restart() {
	m.t.Helper()
	m.kill()
	var err error
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err = m.start(); err == nil {
			return
		}
		m.kill()
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	m.t.Fatalf("testutil: restart MinIO: %v\nlog:\n%s", err, m.LogTail(4096))
}

// LogTail returns up to n trailing bytes of the server's output.
func (m *MinIO) LogTail(n int) string {
	b, err := os.ReadFile(m.logPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Client returns a minio-go client with the root credentials. Its idle
// connections are closed when the test ends.
func (m *MinIO) Client() *minio.Client {
	m.t.Helper()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}
	c, err := minio.New(m.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""),
		Region:    "us-east-1",
		Transport: tr,
	})
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(tr.CloseIdleConnections)
	return c
}

// MakeBucket creates a bucket with a random name starting with prefix and
// returns its name.
func (m *MinIO) MakeBucket(prefix string) string {
	m.t.Helper()
	name := strings.ToLower(prefix) + "-" + randomHex(4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Client().MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		m.t.Fatalf("testutil: make bucket %s: %v", name, err)
	}
	return name
}
