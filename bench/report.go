package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// caseResult holds every run of every tool of one case.
type caseResult struct {
	id       int
	short    string // chart label
	title    string
	unit     string // "MB/s", or "ops/s" for the ops-only case
	throttle float64
	tools    []string
	runs     map[string][]sample
}

// subset is a case made of some tools of another (cases 3 and 4 share runs).
func (c *caseResult) subset(id int, short, title, unit string, tools ...string) *caseResult {
	out := &caseResult{id: id, short: short, title: title, unit: unit, tools: tools, runs: map[string][]sample{}}
	for _, t := range tools {
		out.runs[t] = c.runs[t]
	}
	return out
}

// summary is the median run of a tool and the ranges around it.
type summary struct {
	tool                 string
	n                    int
	wall, minW, maxW     time.Duration
	rate                 float64 // MB/s (10^6 bytes) or ops/s, from the median wall
	bytes, ops           int64
	rssTarget, rssSource int64 // the highest of the runs
	cpu, srcCPU          float64
	srcRead, wire        int64
	filesStage, after    time.Duration
	kind                 string
}

func median[T any](xs []T, less func(a, b T) bool) T {
	s := append([]T(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return less(s[i], s[j]) })
	return s[len(s)/2]
}

func (c *caseResult) summarize(tool string) summary {
	runs := c.runs[tool]
	if len(runs) == 0 {
		return summary{tool: tool}
	}
	m := median(runs, func(a, b sample) bool { return a.wall < b.wall })
	s := summary{tool: tool, n: len(runs), wall: m.wall, minW: m.wall, maxW: m.wall, bytes: m.bytes, ops: m.ops, kind: m.kind,
		cpu:        median(runs, func(a, b sample) bool { return a.cpu < b.cpu }).cpu,
		srcCPU:     median(runs, func(a, b sample) bool { return a.srcCPU < b.srcCPU }).srcCPU,
		srcRead:    median(runs, func(a, b sample) bool { return a.srcRead < b.srcRead }).srcRead,
		wire:       median(runs, func(a, b sample) bool { return a.wire < b.wire }).wire,
		filesStage: median(runs, func(a, b sample) bool { return a.filesStage < b.filesStage }).filesStage,
		after:      median(runs, func(a, b sample) bool { return a.after < b.after }).after}
	for _, r := range runs {
		s.minW, s.maxW = min(s.minW, r.wall), max(s.maxW, r.wall)
		s.rssTarget, s.rssSource = max(s.rssTarget, r.rssTarget), max(s.rssSource, r.rssSource)
	}
	if c.unit == "ops/s" {
		s.rate = float64(s.ops) / s.wall.Seconds()
	} else {
		s.rate = mbps(s.bytes, s.wall)
	}
	return s
}

func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

func mib(n int64) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(n)/(1<<20))
}

func human(n int64) string {
	switch {
	case n < 0:
		return "n/a"
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
}

// table renders one case as a Markdown table.
func (c *caseResult) table() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "### %d. %s\n\n", c.id, c.title)
	sums := make([]summary, len(c.tools))
	for i, t := range c.tools {
		sums[i] = c.summarize(t)
	}
	hdr := []string{"tool", "wall (median)", "runs min–max", c.unit}
	if len(c.tools) > 1 {
		for _, t := range c.tools {
			hdr = append(hdr, "× "+shortName(t))
		}
	}
	hdr = append(hdr, "peak RSS MiB (tgt/src)", "CPU s", "read on source", "files stage / after s")
	switch c.id {
	case 4, 6:
		hdr = append(hdr, "sent by source")
	case 7:
		hdr = append(hdr, "files stage MB/s")
	}
	sb.WriteString("| " + strings.Join(hdr, " | ") + " |\n|")
	for range hdr {
		sb.WriteString(" --- |")
	}
	sb.WriteString("\n")
	for _, s := range sums {
		row := []string{s.tool, fmt.Sprintf("%.2f s", s.wall.Seconds()), fmt.Sprintf("%.2f–%.2f", s.minW.Seconds(), s.maxW.Seconds())}
		if c.unit == "ops/s" {
			row = append(row, fmt.Sprintf("%.0f", s.rate))
		} else {
			row = append(row, fmt.Sprintf("%.1f", s.rate))
		}
		if len(c.tools) > 1 {
			for _, o := range sums {
				if o.tool == s.tool {
					row = append(row, "1")
				} else {
					row = append(row, fmt.Sprintf("%.2f", o.wall.Seconds()/s.wall.Seconds()))
				}
			}
		}
		row = append(row, mib(s.rssTarget)+" / "+mib(s.rssSource), fmt.Sprintf("%.1f", s.cpu), human(s.srcRead))
		if strings.HasPrefix(s.tool, "recoverd") || c.id >= 5 && c.id <= 7 {
			row = append(row, fmt.Sprintf("%.2f / %.2f", s.filesStage.Seconds(), s.after.Seconds()))
		} else {
			row = append(row, "")
		}
		switch c.id {
		case 4, 6:
			row = append(row, human(s.wire))
		case 7:
			row = append(row, fmt.Sprintf("%.1f", mbps(s.bytes, s.filesStage)))
		}
		sb.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return sb.String()
}

// shortName is the column title of a tool in the ratio columns.
func shortName(t string) string {
	r := strings.NewReplacer("recoverd ", "", " plan", "", ", no digest check", " no-check", "copy --transfers ", "t", " -a --whole-file", "", " + sync", "", ", zstd", "")
	return r.Replace(t)
}

// tables is every case's table (what is printed at the end).
func (b *bench) tables() string {
	var sb strings.Builder
	for _, c := range b.results {
		sb.WriteString(c.table())
		sb.WriteString("\n")
	}
	return sb.String()
}

func (b *bench) find(id int) *caseResult {
	for _, c := range b.results {
		if c.id == id {
			return c
		}
	}
	return nil
}

// targets checks issue 15's targets (and the earlier ones still
// measured) against the medians.
func (b *bench) targets() []string {
	var out []string
	mark := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**missed**"
	}
	if c := b.find(1); c != nil {
		r, rs, cp := c.summarize("recoverd peer plan"), c.summarize("rsync -a --whole-file"), c.summarize("cp -r + sync")
		fs := mbps(r.bytes, r.filesStage)
		line := fmt.Sprintf("- 1. Case 1, default settings: %.2f× cp -r + sync (target ≥ 0.9×): %s; %.2f× rsync --whole-file (target ≥ 1.0×): %s. The files stage alone: %.0f MB/s, %.2f× cp, %.2f× rsync.",
			r.rate/cp.rate, mark(r.rate >= 0.9*cp.rate), r.rate/rs.rate, mark(r.rate >= rs.rate), fs, fs/cp.rate, fs/rs.rate)
		if nc := c.summarize("recoverd peer, no digest check"); nc.n > 0 {
			line += fmt.Sprintf(" Without the digest check: %.2f× cp, %.2f× rsync.", nc.rate/cp.rate, nc.rate/rs.rate)
		}
		out = append(out, line)
	}
	if c := b.find(2); c != nil {
		r, rs, cp := c.summarize("recoverd peer plan"), c.summarize("rsync -a --whole-file"), c.summarize("cp -r + sync")
		fs := mbps(r.bytes, r.filesStage)
		out = append(out, fmt.Sprintf("- 2. Case 2, small files: %.2f× cp -r + sync (target ≥ 0.8×): %s (%.2f× rsync). The files stage alone: %.0f MB/s, %.2f× cp.",
			r.rate/cp.rate, mark(r.rate >= 0.8*cp.rate), r.rate/rs.rate, fs, fs/cp.rate))
	}
	for _, id := range []int{1, 2} {
		if c := b.find(id); c != nil {
			if old := c.summarize(baselineTool); old.n > 0 {
				r := c.summarize("recoverd peer plan")
				out = append(out, fmt.Sprintf("- Case %d, this build against the -baseline binary (not a target): %.2f× its throughput, %.2f× its CPU seconds.",
					id, r.rate/old.rate, r.cpu/old.cpu))
			}
		}
	}
	out = append(out, b.sidecarLine()...)
	out = append(out, b.tlsTarget(mark))
	if c := b.find(1); c != nil {
		r := c.summarize("recoverd peer plan")
		share := float64(r.srcRead) / float64(r.bytes)
		out = append(out, fmt.Sprintf("- 4. Case 1, default verification: the source read %s for a %s shard, %.2f× the shard (target: the shard read once, ≤ 1.05×): %s.",
			human(r.srcRead), human(r.bytes), share, mark(share <= 1.05)))
	}
	if c := b.find(6); c != nil {
		on, off := c.summarize("text, zstd on"), c.summarize("text, zstd off")
		slowOn, slowOff := c.summarize(slowLinkTool[true]), c.summarize(slowLinkTool[false])
		if on.n > 0 && off.n > 0 {
			out = append(out, fmt.Sprintf("- 5a. Case 6, loopback, text: compression on (adaptive) at %.2f× the throughput of off (target ≥ 0.95×): %s; %s on the wire for %s.",
				on.rate/off.rate, mark(on.rate >= 0.95*off.rate), human(on.wire), human(on.bytes)))
		}
		if ron, roff := c.summarize("random, zstd on"), c.summarize("random, zstd off"); ron.n > 0 && roff.n > 0 {
			out = append(out, fmt.Sprintf("- 5a. Case 6, loopback, random: on at %.2f× off (target ≥ 0.95×): %s.", ron.rate/roff.rate, mark(ron.rate >= 0.95*roff.rate)))
		}
		if slowOn.n > 0 && slowOff.n > 0 {
			out = append(out, fmt.Sprintf("- 5b. Case 6, text behind %s MB/s (200 Mbit/s): on at %.2f× the throughput of off (target ≥ 2×): %s; %s on the wire for %s.",
				linkMB, slowOn.rate/slowOff.rate, mark(slowOn.rate >= 2*slowOff.rate), human(slowOn.wire), human(slowOn.bytes)))
		}
	}
	if c := b.find(1); c != nil {
		r, rs := c.summarize("recoverd peer plan"), c.summarize("rsync -a --whole-file")
		if r.srcCPU > 0 && rs.srcCPU > 0 {
			per := func(s summary) float64 { return s.srcCPU / float64(s.bytes) * 1e9 }
			out = append(out, fmt.Sprintf("- 6. Case 1, source CPU: recoverd's source daemon %.2f CPU-s per GB, the rsync daemon %.2f: %.2f× (target ≤ 1.5×): %s.",
				per(r), per(rs), per(r)/per(rs), mark(per(r) <= 1.5*per(rs))))
		}
	}
	var peak int64
	var where string
	for _, c := range b.results {
		for _, t := range c.tools {
			if !strings.HasPrefix(t, "recoverd") {
				continue
			}
			s := c.summarize(t)
			if m := max(s.rssTarget, s.rssSource); m > peak {
				peak, where = m, fmt.Sprintf("case %d, %s", c.id, t)
			}
		}
	}
	if peak > 0 {
		out = append(out, fmt.Sprintf("- 7. Peak RSS of any recoverd process in any run: %s MiB (%s) (target < 256 MiB): %s.", mib(peak), where, mark(peak < 256<<20)))
	}
	if c := b.find(5); c != nil {
		s := c.summarize(c.tools[0])
		out = append(out, fmt.Sprintf("- 8. Case 5, ops-only recovery: %.0f ops/s (target ≥ 500,000): %s.", s.rate, mark(s.rate >= 500000)))
		if nc := c.summarize(opsNoCheckTool); nc.n > 0 {
			out = append(out, fmt.Sprintf("- Case 5 without the final digest check (the replay and its commit alone): %.0f ops/s.", nc.rate))
		}
		if old := c.summarize(opsBaselineTool); old.n > 0 {
			out = append(out, fmt.Sprintf("- Case 5, this build against the -baseline binary (not a target): %.2f× its ops/s, %.2f× its CPU seconds.", s.rate/old.rate, s.cpu/old.cpu))
		}
	}
	if c := b.find(3); c != nil {
		r, rc := c.summarize("recoverd snapshot plan"), c.summarize("rclone copy --transfers 4")
		out = append(out, fmt.Sprintf("- Earlier target, case 3: snapshot recovery at %.2f× rclone --transfers 4 (target > 1×): %s.", r.rate/rc.rate, mark(r.rate > rc.rate)))
	}
	if c := b.find(4); c != nil {
		r := c.summarize("recoverd snapshot plan")
		share := float64(r.srcRead) / float64(r.bytes)
		out = append(out, fmt.Sprintf("- Earlier target, case 4: the snapshot plan read %s on the source, %.3f%% of the shard (target < 1%%): %s.", human(r.srcRead), 100*share, mark(share < 0.01)))
	}
	if c := b.find(7); c != nil {
		s := c.summarize(c.tools[0])
		fs := mbps(s.bytes, s.filesStage)
		dev := fs/c.throttle - 1
		out = append(out, fmt.Sprintf("- Earlier target, case 7: the files stage, where the throttle applies, ran at %.1f MB/s with %.0f MB/s set: %+.1f%% (target within ±5%%): %s; the whole recovery %.1f MB/s.",
			fs, c.throttle, 100*dev, mark(dev <= 0.05 && dev >= -0.05), s.rate))
	}
	return out
}

func (b *bench) report() string {
	var sb strings.Builder
	host, _ := os.Hostname()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Fprintf(&sb, "# recoverd side-by-side benchmarks\n\n")
	fmt.Fprintf(&sb, "Generated by `make bench` (bench/main.go) on %s, %s. Do not edit: the next run rewrites it; the analysis is in bench/README.md.\n\n",
		b.started.Format("2006-01-02 15:04 MST"), time.Since(b.started).Round(time.Second))
	fmt.Fprintf(&sb, "- Machine: %s, %d CPUs, Linux %s, %s. Load average (1, 5, 15 min) %s at the start, %s at the end: other work shared the 2 cores, so the numbers are noisy.\n",
		host, runtime.NumCPU(), strings.TrimSpace(string(kernel)), memTotal(), b.loadStart, b.loadEnd)
	fmt.Fprintf(&sb, "- Tree: %s (binaries copied at the start, so a rebuild of bin/ meanwhile does not mix versions).\n", b.tree)
	fmt.Fprintf(&sb, "- %d runs of each tool per case, tools alternating (A B C, B C A, ...); the median wall time is reported, throughput = bytes / median wall.\n", b.cfg.runs)
	if b.cacheDropped {
		sb.WriteString("- The page cache was emptied (`echo 3 > /proc/sys/vm/drop_caches`) before every run: sources are read from the disk; copies are durable at the end (recoverd fsyncs, the others run `sync`).\n")
	} else {
		sb.WriteString("- The page cache was not emptied between runs (not allowed here, or -drop-caches=false): every tool ran with a warm cache alike.\n")
	}
	fmt.Fprintf(&sb, "- Scale %g: shard %d MiB of 32 MiB files, %d small files of %d KiB, %d ops, %d MiB for compression and throttle. MB = 10^6 bytes, MiB = 2^20.\n",
		b.cfg.scale, b.cfg.shardMiB, b.cfg.smallFiles, b.cfg.smallKiB, b.cfg.ops, b.cfg.compressMiB)
	sb.WriteString("- Everything runs on loopback: recoverd daemons with --insecure on 127.0.0.1 (case 8: mutual TLS and a token, certificates from recoverctl certs), an rsync daemon on 127.0.0.1, the bench's own sshd on 127.0.0.1 (case 8), MinIO on 127.0.0.1.\n\n")
	sb.WriteString("Columns: *× tool* is the other tool's median wall time over this one's (above 1: this one is faster). " +
		"*Peak RSS* is VmHWM of the recoverd target and source daemons (fresh processes each run), for the other tools the client's and (rsync) the daemon's maximum RSS, highest over the runs. " +
		"*CPU s* adds every process of the tool (recoverd: both daemons during the recovery). " +
		"*Read on source* is what the source node's process read (rchar: file and socket bytes, page cache or not); rclone reads MinIO, no source node. " +
		"*Sent by source* is recoverd_peer_sent_bytes_total, file bytes on the wire (after compression).\n\n")
	sb.WriteString("![throughput by case and tool](throughput.png)\n\n## Results\n\n")
	sb.WriteString(b.tables())
	if len(b.failures) > 0 {
		sb.WriteString("## Failed cases\n\n")
		for _, f := range b.failures {
			sb.WriteString("- " + strings.SplitN(f, "\n", 2)[0] + "\n")
		}
		sb.WriteString("\n")
	}
	sb.WriteString("## Targets\n\n")
	for _, t := range b.targets() {
		sb.WriteString(t + "\n")
	}
	sb.WriteString("\n")
	if scale, err := os.ReadFile(filepath.Join(b.cfg.out, "scale.md")); err == nil {
		sb.WriteString("## Scale\n\nOne node holding many small shards (issue 16), from bench/results/scale.md (`make scale`, run apart from `make bench`):\n\n")
		sb.Write(scale)
		sb.WriteString("\n")
	}
	if len(b.profiles) > 0 {
		sb.WriteString("## CPU profiles\n\nOne more run of each, with `recoverd --pprof`; top functions by flat CPU time (full listings in bench/results/profiles/):\n\n")
		for _, name := range b.profiles {
			text, _ := os.ReadFile(filepath.Join(b.cfg.out, "profiles", name))
			lines := strings.Split(string(text), "\n")
			fmt.Fprintf(&sb, "%s\n```\n%s\n```\n\n", strings.TrimSpace(lines[0]), strings.Join(lines[2:min(len(lines), 20)], "\n"))
		}
	}
	if micro := microResults(filepath.Join(b.cfg.out, "micro.txt")); micro != "" {
		sb.WriteString("## Go microbenchmarks\n\n`go test -run '^$' -bench . -benchmem` of planner, transfer (chunk path, CRC32C, zstd), shardstore and snapshot, from bench/results/micro.txt:\n\n```\n")
		sb.WriteString(micro)
		sb.WriteString("```\n")
	}
	return sb.String()
}

func memTotal() string {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return "? memory"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return fmt.Sprintf("%.0f GiB memory", float64(kb)/(1<<20))
		}
	}
	return "? memory"
}

// microResults keeps the package and benchmark lines of `go test -bench`.
func microResults(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Benchmark") || strings.HasPrefix(line, "pkg:") || strings.HasPrefix(line, "ok ") || strings.HasPrefix(line, "FAIL") {
			sb.WriteString(line + "\n")
		}
	}
	return sb.String()
}

// treeState names the commit the binaries were built from, and whether the
// work tree had changes to tracked files.
func treeState() string {
	head, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown (not a git work tree)"
	}
	st, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
	out := "commit " + strings.TrimSpace(string(head))
	if n := len(strings.Fields(string(st))) / 2; n > 0 {
		out += fmt.Sprintf(" plus uncommitted changes to %d tracked files (work in progress of other changes, built into bin/ by make build)", n)
	}
	return out
}

// writeRuns saves every sample, for later analysis.
func (b *bench) writeRuns(path string) error {
	type run struct {
		Case        int     `json:"case"`
		Tool        string  `json:"tool"`
		Run         int     `json:"run"`
		WallS       float64 `json:"wall_s"`
		Bytes       int64   `json:"bytes"`
		Ops         int64   `json:"ops"`
		RSSTarget   int64   `json:"rss_target"`
		RSSSource   int64   `json:"rss_source"`
		CPUS        float64 `json:"cpu_s"`
		SourceRead  int64   `json:"source_read"`
		SourceSent  int64   `json:"source_sent"`
		FilesStageS float64 `json:"files_stage_s"`
		AfterS      float64 `json:"after_files_s"`
		Plan        string  `json:"plan,omitempty"`
	}
	var runs []run
	for _, c := range b.results {
		for _, t := range c.tools {
			for i, s := range c.runs[t] {
				runs = append(runs, run{c.id, t, i + 1, s.wall.Seconds(), s.bytes, s.ops, s.rssTarget, s.rssSource, s.cpu, s.srcRead, s.wire,
					s.filesStage.Seconds(), s.after.Seconds(), s.kind})
			}
		}
	}
	data, err := json.MarshalIndent(runs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
