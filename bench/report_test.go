package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fakeResults() []*caseResult {
	mk := func(id int, short, unit string, tools []string, walls ...float64) *caseResult {
		c := &caseResult{id: id, short: short, title: short, unit: unit, tools: tools, runs: map[string][]sample{}}
		for i, t := range tools {
			for r := 0; r < 3; r++ {
				c.runs[t] = append(c.runs[t], sample{wall: time.Duration((walls[i] + float64(r)*0.1) * float64(time.Second)),
					bytes: 2 << 30, ops: 1000000, rssTarget: 80 << 20, rssSource: 40 << 20, cpu: 3, srcRead: 2 << 30, wire: 2 << 30})
			}
		}
		return c
	}
	peer := []string{"recoverd peer plan", "rsync -a --whole-file", "cp -r + sync"}
	c7 := mk(7, "7 throttle 50 MB/s", "MB/s", []string{"recoverd peer, --throttle 50MB"}, 42)
	c7.throttle = 50
	return []*caseResult{
		mk(1, "1 peer, 32 MiB files", "MB/s", peer, 5, 7, 4.5),
		mk(2, "2 peer, 100 KiB files", "MB/s", peer, 9, 12, 6),
		mk(3, "3 snapshot vs rclone", "MB/s", []string{"recoverd snapshot plan", "rclone copy --transfers 4", "rclone copy --transfers 16"}, 6, 8, 7),
		mk(4, "4 failover", "MB/s", []string{"recoverd snapshot plan", "recoverd peer plan"}, 6, 5),
		mk(5, "5 ops-only", "ops/s", []string{"recoverd ops-only plan"}, 20),
		mk(6, "6 compression", "MB/s", []string{"text, zstd on", "text, zstd off", "random, zstd on", "random, zstd off", slowLinkTool[true], slowLinkTool[false]}, 2, 1.5, 1.4, 1.3, 4, 20),
		c7,
		mk(8, "8 peer mTLS vs ssh", "MB/s", []string{tlsTool, rsyncSSHTool, plainTool}, 5, 6, 4),
	}
}

func TestReportAndChart(t *testing.T) {
	b := &bench{cfg: config{runs: 3, scale: 1, out: t.TempDir()}, results: fakeResults(), started: time.Now()}
	rep := b.report()
	for _, want := range []string{"### 1. ", "| recoverd peer plan | 5.10 s |", "× rsync", "## Targets", "- 1. Case 1, default settings: 0.90× cp -r + sync", "- 8. Case 5", "- 3. Peer recovery with mTLS against rsync over ssh: 1.20× (target ≥ 1.0×): **met**. mTLS at 0.80× the plaintext", "**missed**", "**met**", "ops/s"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	path := filepath.Join(t.TempDir(), "chart.png")
	if os.Getenv("BENCH_CHART_OUT") != "" {
		path = os.Getenv("BENCH_CHART_OUT")
	}
	if err := writeChart(path, b.results); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() < 800 || img.Bounds().Dy() < 600 {
		t.Fatalf("chart is %v", img.Bounds())
	}
}

// Without case 8 the target says it was not measured, and is not met.
func TestTLSTargetNotMeasured(t *testing.T) {
	b := &bench{cfg: config{runs: 3, scale: 1, out: t.TempDir()}, results: fakeResults()[:7], started: time.Now()}
	if rep := b.report(); !strings.Contains(rep, "- 3. Peer recovery with mTLS against rsync over ssh (target ≥ 1.0×): **missed**: not measured") {
		t.Errorf("report lacks the unmeasured target 3:\n%s", rep)
	}
}

func TestMedianAndIO(t *testing.T) {
	if m := median([]int{5, 1, 3}, func(a, b int) bool { return a < b }); m != 3 {
		t.Fatalf("median %d", m)
	}
	c := parseIO("rchar: 100\nwchar: 5\nread_bytes: 4096\n")
	if c.rchar != 100 || c.readBytes != 4096 {
		t.Fatalf("%+v", c)
	}
	if got := wrap("rclone transfers=16", 9); len(got) != 2 || got[0] != "rclone" {
		t.Fatalf("wrap: %q", got)
	}
}

func TestFontCoversLabels(t *testing.T) {
	for _, r := range "recoverd vs rsync, rclone and cp: throughput (MB/s, median of runs) 0123456789 -=+/%;^" {
		if _, ok := font5x7[r]; !ok && r != ' ' {
			t.Errorf("no glyph for %q", r)
		}
	}
}
