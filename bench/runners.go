package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/launch"
)

// sample is one run of one tool.
type sample struct {
	wall  time.Duration
	bytes int64 // bytes the run moved (MB/s = bytes / wall)
	ops   int64 // ops replayed (ops-only case)
	// Peak RSS: for recoverd the target and the source daemon; for the
	// other tools the client and, for rsync, the daemon serving the files.
	rssTarget, rssSource int64
	cpu                  float64 // CPU seconds of every process of the tool
	// srcCPU is the CPU seconds of the source side alone (recoverd's
	// source daemon, the rsync daemon), -1 when not measured.
	srcCPU float64
	// srcRead is what the source node read (rchar: every byte read from a
	// file or socket, page cache or not), -1 when no source node takes part.
	srcRead int64
	// wire is recoverd_peer_sent_bytes_total: file bytes the source sent.
	wire int64
	// filesStage is the time recoverd spent in its files stage; after is
	// the time from its end to DONE (verify, finalize, ops and the final
	// comparison with the source).
	filesStage, after time.Duration
	kind              string
}

// recoverdRun describes one recovery between two fresh daemons.
type recoverdRun struct {
	source   *dataset // the source node's data directory, used in place
	template string   // copied to the target's data directory first
	srcArgs  []string
	tgtArgs  []string
	env      []string
	// useSnapshots overrides the node setting for this recovery.
	useSnapshots *bool
	wantKind     pb.PlanKind
	bytes        int64 // bytes the run moves, for MB/s (0: the recovery's total)
	// profile, when set, names files <profile>-target.pprof and
	// <profile>-source.pprof for CPU profiles of profileSecs seconds taken
	// from the start of the recovery.
	profile     string
	profileSecs int
	// bin is the recoverd binary of both daemons; "" is the one built.
	bin string
	// sidecar runs each node as shardd and recoverd --engine beside it
	// (CPU and source reads count both; peak RSS is recoverd's).
	sidecar bool
	// pki, when set, starts both daemons with mutual TLS and a token
	// (case 8) instead of --insecure.
	pki *pki
}

// runRecoverd starts a source and a target daemon (fresh processes, so
// VmHWM is this run's peak), empties the page cache, recovers the shard onto
// the target and times it from StartRecovery to the final state.
func (b *bench) runRecoverd(ctx context.Context, r recoverdRun) (s sample, err error) {
	tgtDir := filepath.Join(b.work, "run", "target")
	if err := os.RemoveAll(tgtDir); err != nil {
		return s, err
	}
	if r.template != "" {
		if err := copyTree(ctx, r.template, tgtDir); err != nil {
			return s, err
		}
	}
	if r.profile != "" {
		r.srcArgs = append(append([]string(nil), r.srcArgs...), "--pprof")
		r.tgtArgs = append(append([]string(nil), r.tgtArgs...), "--pprof")
	}
	bin := b.recoverd
	if r.bin != "" {
		bin = r.bin
	}
	if err := os.MkdirAll(tgtDir, 0o755); err != nil {
		return s, err
	}
	eng, err := b.startEngines(ctx, &r, tgtDir)
	if err != nil {
		return s, err
	}
	defer eng.stop()
	src, err := b.startNode(ctx, bin, "source", r.source.dir, r.pki, r.env, r.srcArgs...)
	if err != nil {
		return s, err
	}
	defer src.stop()
	tgt, err := b.startNode(ctx, bin, "target", tgtDir, r.pki, r.env, r.tgtArgs...)
	if err != nil {
		return s, err
	}
	defer tgt.stop()
	b.coldCache()

	srcCPU0, tgtCPU0 := cpuSeconds(src.PID()), cpuSeconds(tgt.PID())
	io0 := readIO(src.PID())
	engSrc0, engTgt0 := eng.cpu()
	engRead0 := eng.read()
	wire0, _ := src.metric("recoverd_peer_sent_bytes_total")

	var profiles chan error
	if r.profile != "" {
		profiles = make(chan error, 2)
		for _, n := range []*node{tgt, src} {
			go func() { profiles <- n.cpuProfile(ctx, r.profileSecs, r.profile+"-"+n.name+".pprof") }()
		}
		time.Sleep(50 * time.Millisecond) // let the profiles start first
	}
	start := time.Now()
	resp, err := tgt.rec.StartRecovery(ctx, &pb.StartRecoveryRequest{
		Shard: &pb.ShardId{Index: benchID.Index, Shard: uint32(benchID.Shard)}, SourceAddress: src.peerAddr,
		Options: &pb.RecoveryOptions{UseSnapshots: r.useSnapshots}})
	if err != nil {
		return s, fmt.Errorf("start recovery: %w", err)
	}
	stream, err := tgt.rec.WatchRecovery(ctx, &pb.WatchRecoveryRequest{Id: resp.Recovery.Id, MinInterval: durationpb.New(time.Second)})
	if err != nil {
		return s, err
	}
	var last *pb.Recovery
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s, fmt.Errorf("watch recovery: %w", err)
		}
		last = m.Recovery
		if st := last.Stage; st == pb.Stage_STAGE_DONE || st == pb.Stage_STAGE_FAILED || st == pb.Stage_STAGE_CANCELLED {
			break
		}
	}
	s.wall = time.Since(start)
	if profiles != nil {
		for range 2 {
			if err := <-profiles; err != nil {
				return s, err
			}
		}
	}
	if last == nil || last.Stage != pb.Stage_STAGE_DONE {
		return s, fmt.Errorf("recovery did not finish: %v\ntarget log:\n%s", last.GetError(), tgt.LogTail(15))
	}
	if r.wantKind != pb.PlanKind_PLAN_KIND_UNSPECIFIED && last.GetPlan().GetKind() != r.wantKind {
		return s, fmt.Errorf("plan %v, the case needs %v: %v", last.GetPlan().GetKind(), r.wantKind, last.GetPlan().GetReasons())
	}
	if len(last.Fallbacks) > 0 {
		return s, fmt.Errorf("the recovery fell back: %v", last.Fallbacks)
	}
	engSrc, engTgt := eng.cpu()
	s.srcCPU = cpuSeconds(src.PID()) - srcCPU0 + engSrc - engSrc0
	s.cpu = s.srcCPU + cpuSeconds(tgt.PID()) - tgtCPU0 + engTgt - engTgt0
	s.srcRead = readIO(src.PID()).rchar - io0.rchar + eng.read() - engRead0
	s.rssTarget, s.rssSource = peakRSS(tgt.PID()), peakRSS(src.PID())
	if w, err := src.metric("recoverd_peer_sent_bytes_total"); err == nil {
		s.wire = int64(w - wire0)
	}
	s.bytes = r.bytes
	if s.bytes == 0 {
		s.bytes = last.GetTotals().GetTotal().GetBytes()
	}
	s.ops = last.GetOps().GetReplayed()
	s.kind = strings.TrimPrefix(last.GetPlan().GetKind().String(), "PLAN_KIND_")
	for _, st := range last.Stages {
		if st.Stage == pb.Stage_STAGE_FILES && st.EndTime != nil {
			s.filesStage = st.EndTime.AsTime().Sub(st.StartTime.AsTime())
			if last.EndTime != nil {
				s.after = last.EndTime.AsTime().Sub(st.EndTime.AsTime())
			}
		}
	}
	if b.cfg.verbose {
		for _, st := range last.Stages {
			if st.EndTime != nil {
				b.logf("    stage %-14s %6.2fs", st.Stage, st.EndTime.AsTime().Sub(st.StartTime.AsTime()).Seconds())
			}
		}
	}
	return s, nil
}

// coldCache drops the page cache when allowed, so each run reads its
// source from the disk, whatever ran before it.
func (b *bench) coldCache() {
	if b.cfg.dropCaches && !dropCaches() {
		b.logf("cannot drop the page cache here: every tool runs with a warm cache alike")
		b.cfg.dropCaches = false
	}
	b.cacheDropped = b.cfg.dropCaches
}

// cpTool: `cp -r` + `sync`, the local disk's limit for copying the shard.
func (b *bench) runCp(ctx context.Context, d *dataset) (sample, error) {
	dst := filepath.Join(b.work, "run", "dst")
	if err := os.RemoveAll(dst); err != nil {
		return sample{}, err
	}
	b.coldCache()
	res, err := runTimed(ctx, cleanEnv(), filepath.Join(b.logDir, "cp.log"), `cp -r "$1" "$2"`+"\nsync", d.shardDir(), dst)
	if err != nil {
		return sample{}, err
	}
	if err := checkCopy(dst, d); err != nil {
		return sample{}, err
	}
	// cp reads and writes on the one node: what it read is the source read.
	return sample{wall: res.wall, bytes: d.bytes, rssTarget: res.maxRSS, cpu: res.cpu, srcRead: res.io.rchar}, nil
}

// runRsync serves the shard directory from an rsync daemon on loopback (a
// fresh daemon per run) and pulls it with `rsync -a --whole-file` + `sync`.
func (b *bench) runRsync(ctx context.Context, d *dataset) (sample, error) {
	dst := filepath.Join(b.work, "run", "dst")
	if err := os.RemoveAll(dst); err != nil {
		return sample{}, err
	}
	addr, err := launch.FreeAddr()
	if err != nil {
		return sample{}, err
	}
	_, port, _ := net.SplitHostPort(addr)
	dir := filepath.Join(b.work, "run", "rsyncd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sample{}, err
	}
	conf := filepath.Join(dir, "rsyncd.conf")
	text := fmt.Sprintf("use chroot = no\nuid = root\ngid = root\nlog file = %s\n\n[shard]\npath = %s\nread only = yes\n",
		filepath.Join(b.logDir, "rsyncd.log"), d.shardDir())
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return sample{}, err
	}
	daemon, err := startProc("rsync daemon", filepath.Join(b.logDir, "rsyncd.out"), cleanEnv(), "rsync",
		"--daemon", "--no-detach", "--config="+conf, "--address=127.0.0.1", "--port="+port)
	if err != nil {
		return sample{}, err
	}
	defer daemon.stop(10 * time.Second)
	if err := waitListening(ctx, addr, daemon); err != nil {
		return sample{}, err
	}
	return b.rsyncFrom(ctx, daemon, d, dst, "rsync.log",
		`rsync -a --whole-file "rsync://127.0.0.1:$1/shard/" "$2/"`+"\nsync", port, dst)
}

// rsyncFrom times an rsync client script (args as $1...) pulling d into
// dst from daemon (an rsync daemon or sshd: the source side), cache
// emptied first, and stops daemon. The daemon forks a child per
// connection; once reaped, the child's CPU and I/O are counted in the
// daemon's: it waits for that.
func (b *bench) rsyncFrom(ctx context.Context, daemon *proc, d *dataset, dst, logName, script string, args ...string) (sample, error) {
	b.coldCache()
	cpu0, io0 := cpuWithChildren(daemon.PID()), readIO(daemon.PID())
	res, err := runTimed(ctx, cleanEnv(), filepath.Join(b.logDir, logName), script, args...)
	if err != nil {
		return sample{}, err
	}
	var srcIO ioCounters
	var srvCPU float64
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		srcIO, srvCPU = readIO(daemon.PID()), cpuWithChildren(daemon.PID())
		if srcIO.rchar-io0.rchar >= d.bytes {
			break
		}
	}
	daemon.stop(10 * time.Second)
	s := sample{wall: res.wall, bytes: d.bytes, rssTarget: res.maxRSS, cpu: res.cpu + srvCPU - cpu0, srcCPU: srvCPU - cpu0, srcRead: srcIO.rchar - io0.rchar}
	if ru := daemon.rusage(); ru != nil {
		s.rssSource = ru.Maxrss << 10
	}
	return s, checkCopy(dst, d)
}

// runRclone copies the snapshot's blobs (the same objects recoverd
// downloads) from MinIO with `rclone copy --transfers n` + `sync`.
func (b *bench) runRclone(ctx context.Context, m *minioServer, remote string, transfers int, d *dataset) (sample, error) {
	dst := filepath.Join(b.work, "run", "dst")
	if err := os.RemoveAll(dst); err != nil {
		return sample{}, err
	}
	b.coldCache()
	conf := filepath.Join(b.work, "run", "rclone.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		return sample{}, err
	}
	res, err := runTimed(ctx, cleanEnv(m.rcloneEnv(conf)...), filepath.Join(b.logDir, "rclone.log"),
		`rclone copy --transfers "$1" "$2" "$3"`+"\nsync", strconv.Itoa(transfers), remote, dst)
	if err != nil {
		return sample{}, err
	}
	n, _, err := treeSize(dst)
	if err != nil {
		return sample{}, err
	}
	if n != d.bytes {
		return sample{}, fmt.Errorf("rclone copied %d bytes, the snapshot holds %d", n, d.bytes)
	}
	return sample{wall: res.wall, bytes: d.bytes, rssTarget: res.maxRSS, cpu: res.cpu, srcRead: -1}, nil
}

func waitListening(ctx context.Context, addr string, p *proc) error {
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if p.Exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not listening on %s:\n%s", p.Name, addr, p.LogTail(10))
		}
	}
}

// cpuWithChildren is utime+stime+cutime+cstime: the process and the
// children it has reaped.
func cpuWithChildren(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0
	}
	var sum float64
	for _, v := range f[11:15] {
		n, _ := strconv.ParseFloat(v, 64)
		sum += n
	}
	return sum / clkTck
}

// treeSize sums the sizes of the regular files under dir.
func treeSize(dir string) (bytes int64, files int, err error) {
	err = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			info, err := e.Info()
			if err != nil {
				return err
			}
			bytes += info.Size()
			files++
		}
		return nil
	})
	return bytes, files, err
}

// checkCopy checks that a copy of the shard directory holds at least the
// shard's file bytes (it also holds the commit point and the op log).
func checkCopy(dst string, d *dataset) error {
	n, files, err := treeSize(dst)
	if err != nil {
		return err
	}
	if n < d.bytes || files < d.files {
		return fmt.Errorf("copy in %s holds %d bytes in %d files, the shard %d in %d", dst, n, files, d.bytes, d.files)
	}
	return nil
}

func boolp(v bool) *bool { return proto.Bool(v) }
