package testutil

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// TestMinIOCluster: four servers as one erasure set, each with a part of
// every object on its own drive. With one server killed the cluster keeps
// its read and write quorum; with three killed it has neither and says so
// on its health endpoint; restarted, it holds everything it stored.
func TestMinIOCluster(t *testing.T) {
	c := StartMinIOCluster(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pids := map[int]bool{}
	for i, m := range c.Servers {
		if m.PID() == 0 || pids[m.PID()] || m.AccessKey != c.AccessKey || !strings.HasPrefix(m.Endpoint, "127.0.0.1:") {
			t.Fatalf("server %d: %+v", i, m)
		}
		pids[m.PID()] = true
	}
	if c.Endpoint() != c.Servers[0].Endpoint {
		t.Fatalf("clients talk to %s, not to server 0", c.Endpoint())
	}
	bucket := c.MakeBucket("Dist")
	cl := c.Client()
	put := func(ctx context.Context, key string) error {
		_, err := cl.PutObject(ctx, bucket, key, strings.NewReader(key), int64(len(key)), minio.PutObjectOptions{})
		return err
	}
	get := func(ctx context.Context, key string) error {
		o, err := cl.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		defer o.Close()
		b, err := io.ReadAll(o)
		if err == nil && string(b) != key {
			err = fmt.Errorf("read %q, want %q", b, key)
		}
		return err
	}
	if err := put(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	for i, m := range c.Servers {
		if _, err := os.Stat(filepath.Join(m.DataDir, bucket, "before")); err != nil {
			t.Fatalf("server %d's drive holds no part of the object: %v", i, err)
		}
	}

	c.Kill(2)
	if c.Servers[2].PID() != 0 {
		t.Fatal("a killed server has a pid")
	}
	if err := put(ctx, "one-down"); err != nil {
		t.Fatalf("put with one server down: %v", err)
	}
	if err := get(ctx, "before"); err != nil {
		t.Fatalf("get with one server down: %v", err)
	}
	if !c.Healthy(ctx) {
		t.Fatal("the cluster says it lost its quorum with one server of four down")
	}

	// Without quorum MinIO does not refuse reads and writes: it holds them
	// (waiting for locks no quorum can grant) until the client gives up.
	c.Kill(1, 3)
	if c.Healthy(ctx) {
		t.Fatal("the cluster says it is healthy with three servers of four down")
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if err := put(short, "three-down"); err == nil {
		t.Fatal("put with three servers down succeeded")
	}
	if err := get(short, "before"); err == nil {
		t.Fatal("get with three servers down succeeded")
	}

	c.Restart(1, 2, 3)
	if !c.Healthy(ctx) {
		t.Fatal("not healthy after the restart")
	}
	for _, k := range []string{"before", "one-down"} {
		if err := get(ctx, k); err != nil {
			t.Fatalf("get %s after the restart: %v", k, err)
		}
	}
}
