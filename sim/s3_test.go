package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyPrefixes(t *testing.T) {
	cfg := defaultConfig()
	cfg.ShardsPerIndex = 10
	for _, c := range []struct {
		layout string
		depth  int
		shard  int
		kind   int
		want   string
	}{
		{"current", 0, 123, blobs, ""},
		{"current", 1, 123, blobs, "logs-000013/"},
		{"current", 2, 123, blobs, "logs-000013/3/"},
		{"current", 3, 123, manifests, "logs-000013/3/snapshots/"},
		{"hashed", 0, 123, blobs, ""},
		{"hashed", 2, 123, blobs, "4d/logs-000013/"}, // two hex digits for 256 prefixes
	} {
		cfg.Layout, cfg.PrefixDepth = c.layout, c.depth
		got := keyPrefix(&cfg, c.shard, c.kind)
		if c.layout == "hashed" && c.depth > 0 {
			got = got[2:] // the hash itself is checked below
			c.want = c.want[2:]
		}
		if got != c.want {
			t.Errorf("%s depth %d shard %d: prefix %q, want %q", c.layout, c.depth, c.shard, got, c.want)
		}
	}
	// The hash spreads shards evenly over its prefixes.
	cfg.Layout, cfg.PrefixDepth, cfg.HashPrefixes = "hashed", 1, 16
	count := map[string]int{}
	for s := range 16000 {
		count[keyPrefix(&cfg, s, blobs)]++
	}
	if len(count) != 16 {
		t.Fatalf("%d hash prefixes used, want 16", len(count))
	}
	for p, n := range count {
		if n < 800 || n > 1200 {
			t.Errorf("prefix %s holds %d of 16000 shards", p, n)
		}
	}
}

// Partitions on leading characters: the current layout's keys share
// their first characters (logs-0...), the hashed layout's differ at once.
func TestPrefixChars(t *testing.T) {
	cfg := defaultConfig()
	cfg.Nodes, cfg.ShardsPerNode, cfg.RackSize, cfg.ShardsPerIndex = 100, 1000, 10, 1 // logs-000001 to logs-050000
	cl, err := newCluster(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		layout string
		chars  int
		want   int
	}{{"current", 6, 1}, {"current", 7, 6}, {"current", 8, 51}, {"hashed", 1, 16}, {"hashed", 2, 256}} {
		cfg.Layout, cfg.PrefixChars = c.layout, c.chars
		if got := newStore(&cfg, cl).prefixes; got != c.want {
			t.Errorf("%s layout on %d characters: %d prefixes, want %d", c.layout, c.chars, got, c.want)
		}
	}
}

// The number of prefixes a fleet's keys fall in, per layout and depth.
func TestPrefixCounts(t *testing.T) {
	cfg := defaultConfig()
	cfg.Nodes, cfg.ShardsPerNode, cfg.RackSize, cfg.ShardsPerIndex = 40, 50, 10, 5 // 1000 shards, 200 indices
	for _, c := range []struct {
		layout string
		depth  int
		want   int
	}{{"current", 0, 1}, {"current", 1, 200}, {"current", 2, 1000}, {"current", 3, 2000}, {"hashed", 1, 256}} {
		cfg.Layout, cfg.PrefixDepth = c.layout, c.depth
		cl, err := newCluster(&cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := newStore(&cfg, cl).prefixes; got != c.want {
			t.Errorf("%s layout at depth %d: %d prefixes, want %d", c.layout, c.depth, got, c.want)
		}
	}
}

// The cleanup sweep's load, by hand: 10 nodes x 100 copies, 2 copies:
// 500 shards with a snapshot, 10 files each, idle (no churn), keep 3: the
// repository holds 500 x (10 blobs + 3 manifests) = 6,500 keys.
func TestCleanupLoadByHand(t *testing.T) {
	cfg := defaultConfig()
	cfg.Nodes, cfg.ShardsPerNode, cfg.RackSize, cfg.FilesPerShard = 10, 100, 5, 10
	cfg.IdleFraction, cfg.SnapshotFraction, cfg.SnapshotKeep, cfg.CleanupInterval = 1, 1, 3, 600
	cfg.S3Latency = 0.001
	cl, err := newCluster(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	// all: 7 LIST pages of the whole repository, then per shard LIST
	// manifests, GET 3, LIST blobs, LIST marks: 7 + 500 x 6 = 3,007 per
	// node.
	cfg.CleanupSweep = "all"
	bg := backgroundLoad(&cfg, cl)
	if bg.cleanupPerNode != 3007 {
		t.Errorf("sweep of all shards: %v requests per node, want 3007", bg.cleanupPerNode)
	}
	near(t, "fleet GET-class rate", bg.get, 10*3007/600.0)
	near(t, "fleet LIST rate", bg.cleanup[reqList], 10*(7+1500)/600.0)
	// held: each node sweeps the 100 shards it holds a copy of: 600
	// requests; own: its 50 primaries, 300.
	cfg.CleanupSweep = "held"
	if bg = backgroundLoad(&cfg, cl); bg.cleanupPerNode != 600 {
		t.Errorf("sweep of the shards held: %v requests per node, want 600", bg.cleanupPerNode)
	}
	cfg.CleanupSweep = "own"
	if bg = backgroundLoad(&cfg, cl); bg.cleanupPerNode != 300 {
		t.Errorf("sweep of own primaries: %v requests per node, want 300", bg.cleanupPerNode)
	}
	// A sweep longer than the interval runs back to back: one request
	// per latency per node.
	cfg.CleanupSweep, cfg.S3Latency = "all", 0.5
	if bg = backgroundLoad(&cfg, cl); !bg.cleanupBound || math.Abs(bg.get-10*2) > 1e-9 {
		t.Errorf("latency-bound sweep: %v req/s (bound %v), want 20", bg.get, bg.cleanupBound)
	}
}

// Snapshots as background load, by hand: 500 shards, every 100 s, keep 3,
// all written with churn 0.3 of 10 files of 1 MiB: 3 new files each.
func TestSnapshotLoadByHand(t *testing.T) {
	cfg := defaultConfig()
	cfg.Nodes, cfg.ShardsPerNode, cfg.RackSize, cfg.FilesPerShard, cfg.FileRatio = 10, 100, 5, 10, 1
	cfg.ShardSize = Dist{Kind: "fixed", A: 10 << 20}
	cfg.IdleFraction, cfg.Churn, cfg.SnapshotKeep, cfg.SnapshotInterval, cfg.CleanupInterval = 0, 0.3, 3, 100, 0
	cl, err := newCluster(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	bg := backgroundLoad(&cfg, cl)
	n := 500 / 100.0 // snapshots per second
	near(t, "LIST", bg.snapshot[reqList], 4*n)
	near(t, "GET", bg.snapshot[reqGet], 7*n)
	near(t, "PUT", bg.snapshot[reqPut], 4*n) // 3 files + the manifest
	near(t, "DELETE", bg.snapshot[reqDelete], 4*n)
	near(t, "PUT class", bg.put, 8*n)
}

// The calibration hook: a scenario file sets the options and the measured
// time, and the report compares.
func TestScenarioFile(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-scenario", filepath.Join("testdata", "cluster6.json"), "-measured", "60s"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "calibration                 predicted") || !strings.Contains(out.String(), "6 nodes") {
		t.Errorf("report:\n%s", out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"nodez": 3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"-scenario", bad}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown key "nodez"`) {
		t.Errorf("exit %d, %s", code, errOut.String())
	}
}

func TestVaryTable(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"-nodes", "40", "-shards-per-node", "20", "-rack-size", "10", "-vary", "max-recoveries=1,2", "-vary", "use-snapshots=true,false"}
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[2], "| 1 | true |") || !strings.HasPrefix(lines[5], "| 2 | false |") {
		t.Errorf("table:\n%s", out.String())
	}
	for _, l := range lines[2:] {
		if !strings.HasSuffix(l, "| yes |") {
			t.Errorf("row without limits held: %s", l)
		}
	}
}
