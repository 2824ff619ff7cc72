// Command recoverd-bench runs recoverd side by side with rsync, rclone and
// the disk (cp -r + sync) on loopback, several times with the tools
// alternating, and writes bench/results/REPORT.md (tables) and
// bench/results/throughput.png (throughput by case and tool).
//
// `make bench` builds everything, installs rsync, rclone and openssh-server
// (Debian) and MinIO (make minio), runs the Go microbenchmarks into
// bench/results/micro.txt, then runs this program. Data sets come from
// `recoverctl gen` and are cached under the work directory
// ($RECOVERD_BENCH_DIR, default /work/bench-data) until their parameters
// change when BENCH_KEEP_DATA=true (by default they are removed at the end).
//
// Cases (sizes are flags; BENCH_SCALE multiplies them):
//
//  1. peer recovery of a 2 GiB shard of 64 x 32 MiB files vs rsync and cp
//     (recoverd embedded, and as a sidecar beside shardd)
//  2. the same bytes as 20,000 files of 100 KiB
//  3. snapshot recovery from MinIO vs rclone --transfers 4 and 16
//  4. the failover case: snapshot plan vs peer plan, wall and source bytes
//  5. ops-only recovery of 1,000,000 ops
//  6. compression on and off, on text-like and random data
//  7. a 50 MB/s throttle, and how close the recovery keeps to it
//  8. peer recovery with mutual TLS (case 1's shard) vs rsync over ssh
//
// Every process it starts is stopped by PID when it ends, fails or is
// interrupted. Only loopback addresses are used.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

type config struct {
	work, out, bin, minio, baseline string
	runs                            int
	scale                           float64
	cases                           map[int]bool
	keepData, dropCaches            bool
	verbose, profile                bool

	shardMiB, smallFiles, smallKiB, ops, compressMiB, throttleMB int
}

type bench struct {
	cfg                  config
	recoverd, recoverctl string
	baseline             string // the -baseline recoverd, copied
	variants             []variant
	shardd               string // bin/shardd, copied at its first use (the sidecar contestant)
	minio                string
	work, logDir         string
	log                  io.Writer
	cacheDropped         bool
	loadStart, loadEnd   string
	started              time.Time
	results              []*caseResult
	profiles, failures   []string
	tree                 string
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, err := strconv.ParseBool(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func main() {
	var cfg config
	var cases, variants string
	scale, _ := strconv.ParseFloat(envOr("BENCH_SCALE", "1"), 64)
	flag.StringVar(&cfg.work, "dir", envOr("RECOVERD_BENCH_DIR", "/work/bench-data"), "work directory: cached data sets, run directories, logs [RECOVERD_BENCH_DIR]")
	flag.StringVar(&cfg.out, "out", "bench/results", "where REPORT.md and throughput.png go")
	flag.StringVar(&cfg.bin, "bin", "bin", "directory holding recoverd and recoverctl")
	flag.StringVar(&cfg.baseline, "baseline", os.Getenv("BENCH_BASELINE"), "directory holding an older recoverd: cases 1, 2 and 5 run it too, alternating, for a before/after ratio from one run [BENCH_BASELINE]")
	flag.StringVar(&cfg.minio, "minio", envOr("RECOVERD_MINIO_BIN", "bin/minio"), "MinIO server binary [RECOVERD_MINIO_BIN]")
	flag.IntVar(&cfg.runs, "runs", envInt("BENCH_RUNS", 3), "runs of each tool per case; the median is reported [BENCH_RUNS]")
	flag.Float64Var(&cfg.scale, "scale", scale, "multiplies every data size (0.25: a quick run) [BENCH_SCALE]")
	flag.StringVar(&cases, "cases", envOr("BENCH_CASES", "1,2,3,4,5,6,7,8"), "cases to run, e.g. 1,3 (3 and 4 run together) [BENCH_CASES]")
	flag.BoolVar(&cfg.keepData, "keep-data", envBool("BENCH_KEEP_DATA", false), "keep the generated data sets for the next run (default: removed at the end) [BENCH_KEEP_DATA]")
	flag.BoolVar(&cfg.dropCaches, "drop-caches", envBool("BENCH_DROP_CACHES", true), "empty the page cache before every run (needs root) [BENCH_DROP_CACHES]")
	flag.IntVar(&cfg.shardMiB, "shard-mib", envInt("BENCH_SHARD_MIB", 2048), "size of the shard of 32 MiB files (cases 1, 3, 4) [BENCH_SHARD_MIB]")
	flag.IntVar(&cfg.smallFiles, "small-files", envInt("BENCH_SMALL_FILES", 20000), "file count of the small-file shard (case 2) [BENCH_SMALL_FILES]")
	flag.IntVar(&cfg.smallKiB, "small-kib", envInt("BENCH_SMALL_KIB", 100), "size of each small file (case 2) [BENCH_SMALL_KIB]")
	flag.IntVar(&cfg.ops, "ops", envInt("BENCH_OPS", 1000000), "ops replayed by the ops-only recovery (case 5) [BENCH_OPS]")
	flag.IntVar(&cfg.compressMiB, "compress-mib", envInt("BENCH_COMPRESS_MIB", 512), "shard size for the compression and throttle cases (6, 7) [BENCH_COMPRESS_MIB]")
	flag.IntVar(&cfg.throttleMB, "throttle-mb", envInt("BENCH_THROTTLE_MB", 50), "throttle of case 7 in MB/s (10^6 bytes) [BENCH_THROTTLE_MB]")
	flag.StringVar(&variants, "variants", os.Getenv("BENCH_VARIANTS"), "more contestants in cases 1 and 2, for an A/B from one run: \"label: flags; label: bin=DIR\" (flags go to both daemons; bin=DIR runs the recoverd in DIR) [BENCH_VARIANTS]")
	flag.BoolVar(&cfg.verbose, "v", false, "log the stage times of every recoverd run")
	flag.BoolVar(&cfg.profile, "profile", envBool("BENCH_PROFILE", true), "after cases 1, 2, 3, 5 and 8, one more recoverd run with CPU profiles of both daemons (bench/results/profiles/) [BENCH_PROFILE]")
	flag.Parse()
	if cfg.runs < 1 || cfg.scale <= 0 {
		fmt.Fprintln(os.Stderr, "recoverd-bench: -runs must be >= 1 and -scale > 0")
		os.Exit(2)
	}
	cfg.cases = map[int]bool{}
	for _, c := range strings.Split(cases, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 || n > 8 {
			fmt.Fprintf(os.Stderr, "recoverd-bench: bad case %q (1 to 8)\n", c)
			os.Exit(2)
		}
		cfg.cases[n] = true
	}
	if cfg.cases[3] || cfg.cases[4] {
		cfg.cases[3], cfg.cases[4] = true, true
	}
	sc := func(v int) int { return max(1, int(float64(v)*cfg.scale+0.5)) }
	cfg.shardMiB, cfg.smallFiles, cfg.ops, cfg.compressMiB = sc(cfg.shardMiB), sc(cfg.smallFiles), sc(cfg.ops), sc(cfg.compressMiB)

	vs, err := parseVariants(variants)
	if err != nil {
		fmt.Fprintf(os.Stderr, "recoverd-bench: -variants: %v\n", err)
		os.Exit(2)
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	b := &bench{cfg: cfg, log: os.Stderr, started: time.Now(), variants: vs}
	err = b.run(ctx)
	stopAll()
	if err != nil {
		fmt.Fprintf(os.Stderr, "recoverd-bench: %v\n", err)
		os.Exit(1)
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func loadAvg() string {
	s, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(s))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func (b *bench) run(ctx context.Context) error {
	var err error
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	b.recoverd, b.recoverctl, b.minio = abs(filepath.Join(b.cfg.bin, "recoverd")), abs(filepath.Join(b.cfg.bin, "recoverctl")), abs(b.cfg.minio)
	for _, tool := range []string{b.recoverd, b.recoverctl, "rsync", "rclone", "cp", "sync", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (make bench builds and installs everything): %w", tool, err)
		}
	}
	if b.work, err = filepath.Abs(b.cfg.work); err != nil {
		return err
	}
	// Private copies: bin/ is shared with whoever runs make build meanwhile,
	// and every run must use the binaries the bench started with.
	b.tree = treeState()
	for _, p := range []*string{&b.recoverd, &b.recoverctl} {
		dst := filepath.Join(b.work, "bin", filepath.Base(*p))
		if err := copyFile(*p, dst); err != nil {
			return err
		}
		*p = dst
	}
	if b.cfg.baseline != "" {
		b.baseline = filepath.Join(b.work, "bin", "recoverd-baseline")
		if err := copyFile(filepath.Join(b.cfg.baseline, "recoverd"), b.baseline); err != nil {
			return err
		}
	}
	if err := b.copyVariantBins(); err != nil {
		return err
	}
	b.logDir = filepath.Join(b.work, "logs")
	for _, d := range []string{b.logDir, filepath.Join(b.work, "run"), b.cfg.out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	defer func() {
		os.RemoveAll(filepath.Join(b.work, "run"))
		os.RemoveAll(filepath.Join(b.work, "minio"))
		if !b.cfg.keepData {
			os.RemoveAll(filepath.Join(b.work, "data"))
		}
	}()
	b.loadStart = loadAvg()
	b.logf("recoverd-bench: work dir %s, %d runs per tool, scale %g, load average %s", b.work, b.cfg.runs, b.cfg.scale, b.loadStart)

	steps := []struct {
		n   int
		run func(context.Context) error
	}{{1, b.casePeer}, {2, b.caseSmall}, {3, b.caseFailover}, {5, b.caseOps}, {6, b.caseCompression}, {7, b.caseThrottle}, {8, b.caseTLS}}
	for _, s := range steps {
		if !b.cfg.cases[s.n] {
			continue
		}
		if err := s.run(ctx); err != nil {
			if ctx.Err() != nil {
				return err
			}
			// One broken case does not lose the others: it is reported.
			b.logf("case %d FAILED: %v", s.n, err)
			b.failures = append(b.failures, fmt.Sprintf("case %d: %v", s.n, err))
		}
	}
	b.loadEnd = loadAvg()
	sort.Slice(b.results, func(i, j int) bool { return b.results[i].id < b.results[j].id })
	report := b.report()
	if err := os.WriteFile(filepath.Join(b.cfg.out, "REPORT.md"), []byte(report), 0o644); err != nil {
		return err
	}
	if err := b.writeRuns(filepath.Join(b.cfg.out, "runs.json")); err != nil {
		return err
	}
	if err := writeChart(filepath.Join(b.cfg.out, "throughput.png"), b.results); err != nil {
		return err
	}
	fmt.Println(b.tables())
	b.logf("wrote %s and %s", filepath.Join(b.cfg.out, "REPORT.md"), filepath.Join(b.cfg.out, "throughput.png"))
	if len(b.failures) > 0 {
		return fmt.Errorf("%d case(s) failed: %s", len(b.failures), strings.Join(b.failures, "; "))
	}
	return nil
}

// tool is one contestant of a case.
type tool struct {
	name string
	run  func(context.Context) (sample, error)
}

// runCase runs every tool cfg.runs times, alternating them and rotating
// who goes first, so drift in the machine's load spreads over all of them.
func (b *bench) runCase(ctx context.Context, c *caseResult, tools []tool) error {
	c.runs = map[string][]sample{}
	for _, t := range tools {
		c.tools = append(c.tools, t.name)
	}
	b.logf("case %d: %s", c.id, c.title)
	for i := 0; i < b.cfg.runs; i++ {
		for j := range tools {
			t := tools[(i+j)%len(tools)]
			s, err := t.run(ctx)
			if err != nil {
				return fmt.Errorf("case %d, %s, run %d: %w", c.id, t.name, i+1, err)
			}
			c.runs[t.name] = append(c.runs[t.name], s)
			rate := fmt.Sprintf("%8.1f MB/s", mbps(s.bytes, s.wall))
			if c.unit == "ops/s" {
				rate = fmt.Sprintf("%8.0f ops/s", float64(s.ops)/s.wall.Seconds())
			}
			b.logf("  run %d %-30s %7.2fs %s  cpu %6.2fs  rss %s/%s MiB  src read %s", i+1, t.name, s.wall.Seconds(),
				rate, s.cpu, mib(s.rssTarget), mib(s.rssSource), human(s.srcRead))
		}
	}
	b.results = append(b.results, c)
	return nil
}

func (b *bench) casePeer(ctx context.Context) error {
	big, err := b.bigShard(ctx)
	if err != nil {
		return err
	}
	c := &caseResult{id: 1, short: "1 peer, 32 MiB files", title: "Peer recovery, " + big.describe(), unit: "MB/s"}
	if err := b.runCase(ctx, c, b.fileCopyTools(big)); err != nil {
		return err
	}
	return b.profileRun(ctx, c, "recoverd peer plan", b.peerRun(big))
}

func (b *bench) caseSmall(ctx context.Context) error {
	small, err := b.smallFiles(ctx)
	if err != nil {
		return err
	}
	c := &caseResult{id: 2, short: "2 peer, 100 KiB files", title: "Peer recovery, small files: " + small.describe(), unit: "MB/s"}
	if err := b.runCase(ctx, c, b.fileCopyTools(small)); err != nil {
		return err
	}
	return b.profileRun(ctx, c, "recoverd peer plan", b.peerRun(small))
}

func (b *bench) peerRun(d *dataset) recoverdRun {
	none := []string{"--repo", "none"}
	return recoverdRun{source: d, srcArgs: none, tgtArgs: none, wantKind: pb.PlanKind_PLAN_KIND_PEER}
}

// profileRun runs the tool's recovery once more with CPU profiles of both
// daemons over its median wall time, and keeps the top functions.
func (b *bench) profileRun(ctx context.Context, c *caseResult, tool string, r recoverdRun) error {
	if !b.cfg.profile {
		return nil
	}
	dir := filepath.Join(b.cfg.out, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.profile = filepath.Join(b.work, "run", fmt.Sprintf("case%d", c.id))
	r.profileSecs = int(c.summarize(tool).wall.Seconds()) + 1
	s, err := b.runRecoverd(ctx, r)
	if err != nil {
		return fmt.Errorf("case %d, profiled run: %w", c.id, err)
	}
	b.logf("  profiled run of %s: %.2fs (profiles cover %ds)", tool, s.wall.Seconds(), r.profileSecs)
	for _, side := range []string{"target", "source"} {
		out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", b.recoverd, r.profile+"-"+side+".pprof").Output()
		if err != nil {
			return fmt.Errorf("go tool pprof: %w", err)
		}
		name := fmt.Sprintf("case%d-%s.txt", c.id, side)
		head := fmt.Sprintf("CPU profile of the recoverd %s daemon during case %d (%s), one run of %.2fs, profile over %ds\n\n", side, c.id, tool, s.wall.Seconds(), r.profileSecs)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(head+string(out)), 0o644); err != nil {
			return err
		}
		b.profiles = append(b.profiles, name)
	}
	return nil
}

func (b *bench) fileCopyTools(d *dataset) []tool {
	noCheck := b.peerRun(d)
	noCheck.tgtArgs = append(noCheck.tgtArgs, "--verify-digest=false")
	tools := []tool{
		{"recoverd peer plan", func(ctx context.Context) (sample, error) { return b.runRecoverd(ctx, b.peerRun(d)) }},
		{"recoverd peer, no digest check", func(ctx context.Context) (sample, error) { return b.runRecoverd(ctx, noCheck) }},
		{"rsync -a --whole-file", func(ctx context.Context) (sample, error) { return b.runRsync(ctx, d) }},
		{"cp -r + sync", func(ctx context.Context) (sample, error) { return b.runCp(ctx, d) }},
	}
	if d.name == "big" {
		tools = append(tools, b.sidecarTool(d))
	}
	if b.baseline != "" {
		old := b.peerRun(d)
		old.bin = b.baseline
		tools = append(tools, tool{baselineTool, func(ctx context.Context) (sample, error) { return b.runRecoverd(ctx, old) }})
	}
	return append(tools, b.variantTools(d)...)
}

// linkMB is case 6's slow link: 200 Mbit/s.
const linkMB = "25"

// slowLinkTool names case 6's runs behind the slow link.
var slowLinkTool = map[bool]string{true: "text, zstd on, 200 Mbit/s", false: "text, zstd off, 200 Mbit/s"}

// baselineTool is the peer plan run by the -baseline binary.
const baselineTool = "recoverd peer plan, baseline binary"

func (d *dataset) describe() string {
	return fmt.Sprintf("%s in %d files", human(d.bytes), d.files)
}
