package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/recoverd/recoverd/internal/testutil"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// startServe runs the daemon's wiring in this process on loopback,
// plaintext, and returns its config and a stop function that returns
// serve's error.
func startServe(t *testing.T, cfg Config, logw io.Writer) (Config, func() error) {
	t.Helper()
	cfg.Insecure = true
	cfg.GRPCAddr, cfg.PeerAddr, cfg.HTTPAddr = testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	sec, err := loadSecurity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, cfg, sec, slog.New(slog.NewTextHandler(logw, nil))) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not return after its context ended")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-errc:
			stopped = true
			t.Fatalf("serve stopped at start: %v", err)
		default:
		}
		if code, _ := get(t, cfg, "/readyz"); code == http.StatusOK {
			return cfg, stop
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never answered 200")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, cfg Config, path string) (int, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + cfg.HTTPAddr + path)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func scrape(t *testing.T, cfg Config) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	code, body := get(t, cfg, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics answered %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return body, mfs
}

func series(mfs map[string]*dto.MetricFamily, name, label, value string) (float64, bool) {
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		match := label == ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && lp.GetValue() == value {
				match = true
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
		return 0, true
	}
	return 0, false
}

// The real wiring: health, readiness, /metrics that promlint accepts and
// that holds the families the issue lists, and a cleanup at start that
// removes an expired lease and an unfinished upload marked for deletion
// longer ago than the delay (and counts them), and marks an unfinished
// upload past the grace without deleting it.
func TestServeMetricsHealthAndStartupCleanup(t *testing.T) {
	data := t.TempDir()
	id := shardstore.ShardID{Index: "logs", Shard: 0}
	// Before the node starts: a shard with a lease that will have expired,
	// and an abandoned upload in the default local repository.
	sh, err := shardstore.Open(data, id, shardstore.Options{Create: true, LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Leases().Add("peer-gone", sh.Leases().Floor(), "n9"); err != nil {
		t.Fatal(err)
	}
	sh.Close()
	repo, err := snapshot.NewLocalRepository(filepath.Join(data, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	orphan := snapshot.BlobPrefix(id) + "orphan"
	if err := repo.Put(context.Background(), orphan, strings.NewReader("abandoned"), 9); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	orphanPath := filepath.Join(repo.Root(), filepath.FromSlash(orphan))
	os.Chtimes(orphanPath, old, old)
	// It was marked for deletion (by a sweep) two days ago.
	mark := snapshot.MarkPrefix(id) + "orphan"
	markJSON := `{"blob":"` + orphan + `","reason":"unfinished"}`
	if err := repo.Put(context.Background(), mark, strings.NewReader(markJSON), int64(len(markJSON))); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(repo.Root(), filepath.FromSlash(mark)), old, old)
	// Another, not marked yet: the sweep marks it and deletes nothing.
	unmarked := snapshot.BlobPrefix(id) + "orphan2"
	if err := repo.Put(context.Background(), unmarked, strings.NewReader("abandoned"), 9); err != nil {
		t.Fatal(err)
	}
	unmarkedPath := filepath.Join(repo.Root(), filepath.FromSlash(unmarked))
	os.Chtimes(unmarkedPath, old, old)
	time.Sleep(1100 * time.Millisecond) // the lease expires

	cfg := defaultConfig()
	cfg.Data, cfg.LeaseTTL, cfg.NodeID = data, time.Second, "n1"
	var logs syncBuf
	cfg, stop := startServe(t, cfg, &logs)

	if code, body := get(t, cfg, "/healthz"); code != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	// The startup sweep runs in the background: wait for its count.
	var mfs map[string]*dto.MetricFamily
	var body []byte
	deadline := time.Now().Add(20 * time.Second)
	for {
		body, mfs = scrape(t, cfg)
		if n, _ := series(mfs, "recoverd_cleanup_runs_total", "", ""); n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no cleanup sweep ran at start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, name := range []string{
		"recoverd_recoveries_in_flight", "recoverd_recoveries_queued", "recoverd_ops_replayed_total",
		"recoverd_throttle_wait_seconds_total", "recoverd_snapshot_download_errors_total",
		"recoverd_peer_sent_bytes_total", "recoverd_peer_sent_ops_total", "recoverd_retention_leases", "recoverd_commit_pins",
		"recoverd_cleanup_removals_total", "recoverd_cleanup_failures_total", "recoverd_cleanup_runs_total",
		"recoverd_cleanup_last_run_timestamp_seconds", "go_goroutines", "process_start_time_seconds",
	} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	for kind, want := range map[string]float64{"lease": 1, "upload": 1, "staging": 0} {
		if got, ok := series(mfs, "recoverd_cleanup_removals_total", "kind", kind); !ok || got != want {
			t.Errorf("recoverd_cleanup_removals_total{kind=%q} = %v (present %v), want %v", kind, got, ok, want)
		}
	}
	if _, err := os.Stat(orphanPath); !os.IsNotExist(err) {
		t.Errorf("abandoned upload marked two days ago survived the startup cleanup: %v", err)
	}
	if _, err := os.Stat(unmarkedPath); err != nil {
		t.Errorf("abandoned upload not marked yet was deleted at once: %v", err)
	}
	if !strings.Contains(logs.String(), "cleanup marked for deletion") || !strings.Contains(logs.String(), "orphan2") {
		t.Errorf("mark not logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "cleanup removed") || !strings.Contains(logs.String(), "peer-gone") {
		t.Errorf("removals not logged:\n%s", logs.String())
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if code, _ := get(t, cfg, "/readyz"); code == http.StatusOK {
		t.Fatal("/readyz still 200 after shutdown")
	}
}
