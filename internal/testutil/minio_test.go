package testutil

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMinIOLifecycle(t *testing.T) {
	m := StartMinIO(t)
	if !strings.HasPrefix(m.Endpoint, "127.0.0.1:") || m.PID() == 0 || m.AccessKey == "" || len(m.SecretKey) < 8 {
		t.Fatalf("handle %+v", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bucket := m.MakeBucket("Life")
	c := m.Client()
	if _, err := c.PutObject(ctx, bucket, "k", strings.NewReader("v"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.DataDir, bucket)); err != nil {
		t.Fatalf("data dir does not hold the bucket: %v", err)
	}

	// Paused: the port accepts connections, nothing answers.
	m.Pause()
	hc := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	if _, err := hc.Get(m.URL() + "/minio/health/live"); err == nil {
		t.Fatal("a paused server answered")
	}
	m.Resume()
	resp, err := hc.Get(m.URL() + "/minio/health/live")
	if err != nil {
		t.Fatalf("after resume: %v", err)
	}
	resp.Body.Close()

	// Restarted on the same port with the same data.
	pid := m.PID()
	m.Restart()
	if m.PID() == pid || m.PID() == 0 {
		t.Fatal("restart kept the process")
	}
	if _, err := c.StatObject(ctx, bucket, "k", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("object lost across a restart: %v", err)
	}

	// Stopped: connections are refused, and the process is gone.
	pid = m.PID()
	m.Stop()
	if _, err := net.DialTimeout("tcp", m.Endpoint, time.Second); err == nil {
		t.Fatal("a stopped server accepts connections")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d still exists: %v", pid, err)
	}
	m.Restart()
	m.Kill()
	if m.PID() != 0 {
		t.Fatal("killed server has a pid")
	}
}

func TestFindMinIO(t *testing.T) {
	t.Setenv(MinIOBinEnv, filepath.Join(t.TempDir(), "nothing"))
	if _, err := FindMinIO(); err == nil || !strings.Contains(err.Error(), MinIOBinEnv) {
		t.Fatalf("FindMinIO with a bad %s: %v", MinIOBinEnv, err)
	}
	t.Setenv(MinIOBinEnv, "")
	t.Setenv("HOME", t.TempDir())
	t.Chdir(t.TempDir())
	_, err := FindMinIO()
	if err == nil || !strings.Contains(err.Error(), "make minio") {
		t.Fatalf("FindMinIO with nothing installed: %v", err)
	}
}
