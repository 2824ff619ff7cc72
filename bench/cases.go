package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/snapshot"
)

// Cases 3 to 7: failover, ops, compression and throttle.

// caseFailover runs cases 3 and 4 together: the same failover source, the
// same snapshot, four contestants alternating.
func (b *bench) caseFailover(ctx context.Context) error {
	big, err := b.bigShard(ctx)
	if err != nil {
		return err
	}
	src, err := b.failoverSource(ctx, big)
	if err != nil {
		return err
	}
	m, err := b.startMinIO(ctx)
	if err != nil {
		return err
	}
	defer m.stop(10 * time.Second)
	conf := filepath.Join(b.work, "run", "rclone.conf")
	os.WriteFile(conf, nil, 0o600)
	if _, err := runTimed(ctx, cleanEnv(m.rcloneEnv(conf)...), filepath.Join(b.logDir, "rclone.log"), `rclone mkdir minio:bench`); err != nil {
		return err
	}
	repo := "s3://bench/repo?endpoint=" + m.endpoint + "&tls=false"
	b.logf("snapshot of the old primary's copy (%s) into MinIO", big.describe())
	cmd := exec.CommandContext(ctx, b.recoverctl, "snapshot", "create", "--repo", repo, "--data", big.dir, "--index", benchID.Index, "--shard", "0")
	cmd.Env = cleanEnv(m.s3Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("recoverctl snapshot create: %v\n%s", err, out)
	} else {
		b.logf("  %s", strings.TrimSpace(string(out)))
	}
	remote := "minio:bench/repo/" + strings.TrimSuffix(snapshot.ObjectKey(snapshot.LayoutHashed, snapshot.BlobPrefix(benchID)), "/")
	args := []string{"--repo", repo}
	env := m.s3Env()
	snap := recoverdRun{source: src, srcArgs: args, tgtArgs: args, env: env, useSnapshots: boolp(true), wantKind: pb.PlanKind_PLAN_KIND_SNAPSHOT}
	snapNoCheck := snap
	snapNoCheck.tgtArgs = append(append([]string(nil), args...), "--verify-digest=false")
	tools := []tool{
		{"recoverd snapshot plan", func(ctx context.Context) (sample, error) { return b.runRecoverd(ctx, snap) }},
		{"recoverd snapshot, no digest check", func(ctx context.Context) (sample, error) { return b.runRecoverd(ctx, snapNoCheck) }},
		{"rclone copy --transfers 4", func(ctx context.Context) (sample, error) { return b.runRclone(ctx, m, remote, 4, big) }},
		{"rclone copy --transfers 16", func(ctx context.Context) (sample, error) { return b.runRclone(ctx, m, remote, 16, big) }},
		{"recoverd peer plan", func(ctx context.Context) (sample, error) {
			return b.runRecoverd(ctx, recoverdRun{source: src, srcArgs: args, tgtArgs: args, env: env, useSnapshots: boolp(false), wantKind: pb.PlanKind_PLAN_KIND_PEER})
		}},
	}
	all := &caseResult{id: 3, title: "snapshot plan, rclone and peer plan from the failover source (cases 3 and 4)"}
	if err := b.runCase(ctx, all, tools); err != nil {
		return err
	}
	b.results = b.results[:len(b.results)-1]
	c3 := all.subset(3, "3 snapshot vs rclone", "Snapshot recovery from MinIO, "+big.describe()+" in the snapshot", "MB/s",
		"recoverd snapshot plan", "recoverd snapshot, no digest check", "rclone copy --transfers 4", "rclone copy --transfers 16")
	c4 := all.subset(4, "4 failover", fmt.Sprintf("Failover: a new replica of the new primary (%s, merged into other files), snapshot plan vs peer plan", src.describe()), "MB/s",
		"recoverd snapshot plan", "recoverd snapshot, no digest check", "recoverd peer plan")
	b.results = append(b.results, c3, c4)
	return b.profileRun(ctx, c3, "recoverd snapshot plan", snap)
}

func (b *bench) caseOps(ctx context.Context) error {
	src, tgt, err := b.opsData(ctx)
	if err != nil {
		return err
	}
	retain := strconv.FormatInt(b.retainOps(), 10)
	args := []string{"--repo", "none", "--retain-ops", retain}
	run := recoverdRun{source: src, template: tgt.dir, srcArgs: args, tgtArgs: args, wantKind: pb.PlanKind_PLAN_KIND_OPS_ONLY}
	// Without the final digest check: the replay (and its commit) alone.
	noCheck := run
	noCheck.tgtArgs = append(append([]string(nil), args...), "--verify-digest=false")
	tools := []tool{
		{"recoverd ops-only plan", func(ctx context.Context) (sample, error) { return b.runRecoverd(ctx, run) }},
		{opsNoCheckTool, func(ctx context.Context) (sample, error) { return b.runRecoverd(ctx, noCheck) }},
	}
	if b.baseline != "" {
		old := run
		old.bin = b.baseline
		tools = append(tools, tool{opsBaselineTool, func(ctx context.Context) (sample, error) { return b.runRecoverd(ctx, old) }})
	}
	c := &caseResult{id: 5, short: "5 ops-only", title: fmt.Sprintf("Ops-only recovery of %d ops (100-byte docs)", b.cfg.ops), unit: "ops/s"}
	if err := b.runCase(ctx, c, tools); err != nil {
		return err
	}
	return b.profileRun(ctx, c, "recoverd ops-only plan", run)
}

// Case 5's other contestants: the replay without the final digest check,
// and the ops-only plan run by the -baseline binary.
const (
	opsNoCheckTool  = "recoverd ops-only, no digest check"
	opsBaselineTool = "recoverd ops-only plan, baseline binary"
)

func (b *bench) caseCompression(ctx context.Context) error {
	var tools []tool
	var desc []string
	for _, content := range []string{"text", "random"} {
		d, err := b.compressData(ctx, content)
		if err != nil {
			return err
		}
		desc = append(desc, content+": "+d.describe())
		for _, on := range []bool{true, false} {
			args := []string{"--repo", "none", "--compression=" + strconv.FormatBool(on)}
			name := content + ", zstd " + map[bool]string{true: "on", false: "off"}[on]
			tools = append(tools, tool{name, func(ctx context.Context) (sample, error) {
				return b.runRecoverd(ctx, recoverdRun{source: d, srcArgs: args, tgtArgs: args, wantKind: pb.PlanKind_PLAN_KIND_PEER})
			}})
		}
	}
	// The same text behind a 200 Mbit/s link: the source throttled to
	// 25 MB/s of wire bytes (the budget counts bytes as sent, compressed
	// or not).
	text, err := b.compressData(ctx, "text")
	if err != nil {
		return err
	}
	for _, on := range []bool{true, false} {
		args := []string{"--repo", "none", "--compression=" + strconv.FormatBool(on)}
		src := append(append([]string(nil), args...), "--throttle", linkMB+"MB")
		name := slowLinkTool[on]
		tools = append(tools, tool{name, func(ctx context.Context) (sample, error) {
			return b.runRecoverd(ctx, recoverdRun{source: text, srcArgs: src, tgtArgs: args, wantKind: pb.PlanKind_PLAN_KIND_PEER})
		}})
	}
	return b.runCase(ctx, &caseResult{id: 6, short: "6 compression", title: "Compression on (adaptive) and off (peer plan), on loopback and behind a " + linkMB + " MB/s (200 Mbit/s) source; " + strings.Join(desc, "; "), unit: "MB/s"}, tools)
}

func (b *bench) caseThrottle(ctx context.Context) error {
	d, err := b.compressData(ctx, "random")
	if err != nil {
		return err
	}
	rate := fmt.Sprintf("%dMB", b.cfg.throttleMB)
	c := &caseResult{id: 7, short: fmt.Sprintf("7 throttle %d MB/s", b.cfg.throttleMB), title: fmt.Sprintf("Throttle: --throttle %s on the target, peer plan, %s", rate, d.describe()),
		unit: "MB/s", throttle: float64(b.cfg.throttleMB)}
	return b.runCase(ctx, c, []tool{
		{"recoverd peer, --throttle " + rate, func(ctx context.Context) (sample, error) {
			return b.runRecoverd(ctx, recoverdRun{source: d, srcArgs: []string{"--repo", "none"}, tgtArgs: []string{"--repo", "none", "--throttle", rate},
				wantKind: pb.PlanKind_PLAN_KIND_PEER})
		}},
	})
}
