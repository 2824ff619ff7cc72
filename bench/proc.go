package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/launch"
)

// Every process the bench starts is registered here, so an error, a panic
// unwinding through main or SIGINT/SIGTERM stops each of them by PID.
var procs = struct {
	sync.Mutex
	m map[int]*proc
}{m: map[int]*proc{}}

// proc is a long-running child (recoverd, MinIO, the rsync daemon).
type proc struct{ *launch.Process }

func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	cmd := childCommand(bin, args...)
	cmd.Env = env
	p, err := launch.Start(name, logPath, cmd)
	if err != nil {
		return nil, err
	}
	return register(p), nil
}

// childCommand runs bin in a process group of its own (a Ctrl-C on the
// terminal reaches only us; we stop the children by PID), killed if we die
// without cleaning up.
func childCommand(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// register adds a started process to those stopAll stops.
func register(lp *launch.Process) *proc {
	p := &proc{lp}
	procs.Lock()
	procs.m[p.PID()] = p
	procs.Unlock()
	return p
}

// stop sends SIGTERM, waits up to wait, then SIGKILL, and waits for the exit.
func (p *proc) stop(wait time.Duration) {
	if p == nil {
		return
	}
	p.Signal(syscall.SIGCONT)
	p.Stop(syscall.SIGTERM, wait)
	procs.Lock()
	delete(procs.m, p.PID())
	procs.Unlock()
}

// rusage of the exited process (and the children it waited for).
func (p *proc) rusage() *syscall.Rusage {
	if p.Cmd.ProcessState == nil {
		return nil
	}
	ru, _ := p.Cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return ru
}

// stopAll stops every registered process, one by one, by PID.
func stopAll() {
	procs.Lock()
	list := make([]*proc, 0, len(procs.m))
	for _, p := range procs.m {
		list = append(list, p)
	}
	procs.Unlock()
	for _, p := range list {
		p.stop(10 * time.Second)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// cleanEnv is the environment without proxies and cloud credentials, so
// the children talk to loopback only and only with what we give them.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		u := strings.ToUpper(k)
		if strings.HasPrefix(u, "AWS_") || strings.HasPrefix(u, "RCLONE_") || strings.HasPrefix(u, "RECOVERD_") ||
			strings.HasPrefix(u, "MINIO_") || strings.HasSuffix(u, "_PROXY") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// ---- /proc readers ----

// clkTck is USER_HZ, 100 on every Linux this runs on.
const clkTck = 100

// cpuSeconds is utime+stime of pid (its live threads and exited ones).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clkTck
}

// statusKB reads a "Name: N kB" line of /proc/pid/status.
func statusKB(pid int, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}

// peakRSS is VmHWM, the peak resident set of pid, in bytes.
func peakRSS(pid int) int64 { return statusKB(pid, "VmHWM") << 10 }

// ioCounters holds /proc/pid/io: rchar counts every byte read through
// read-like calls (page cache or not), read_bytes what came off the disk.
type ioCounters struct{ rchar, readBytes int64 }

func parseIO(s string) ioCounters {
	var c ioCounters
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "rchar":
			c.rchar = n
		case "read_bytes":
			c.readBytes = n
		}
	}
	return c
}

func readIO(pid int) ioCounters {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	return parseIO(string(b))
}

// dropCaches empties the page cache so every run reads from the disk;
// it reports false when the sandbox does not allow it.
func dropCaches() bool {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200) == nil
}

// ---- recoverd nodes ----

type node struct {
	*proc
	name, data                   string
	grpcAddr, peerAddr, httpAddr string
	conn                         *grpc.ClientConn
	rec                          pb.RecoveryServiceClient
}

// startNode starts recoverd on loopback, plaintext (sec nil) or with the
// production TLS flags of sec, and waits until it serves.
// bin is the recoverd binary (the one built, or the baseline).
func (b *bench) startNode(ctx context.Context, bin, name, data string, sec *pki, env []string, args ...string) (*node, error) {
	rd, err := launch.StartRecoverd(ctx, launch.RecoverdOptions{Bin: bin, Name: name, Data: data, Secure: sec != nil,
		LogPath: filepath.Join(b.logDir, name+".log"), Env: cleanEnv(env...), Command: childCommand, ReadyTimeout: 60 * time.Second,
		Args: append(append([]string{"--log-level", "warn", "--cleanup-interval", "0"}, sec.nodeArgs(name)...), args...)})
	if err != nil {
		return nil, err
	}
	n := &node{proc: register(rd.Process), name: name, data: data, grpcAddr: rd.GRPC, peerAddr: rd.Peer, httpAddr: rd.HTTP}
	if n.conn, err = grpc.NewClient(n.grpcAddr, sec.dialOptions()...); err != nil {
		n.stop()
		return nil, err
	}
	n.rec = pb.NewRecoveryServiceClient(n.conn)
	return n, nil
}

func (n *node) stop() {
	if n == nil {
		return
	}
	if n.conn != nil {
		n.conn.Close()
	}
	if n.proc != nil {
		n.proc.stop(20 * time.Second)
	}
}

// metric returns the value of an unlabelled series on the node's /metrics.
func (n *node) metric(name string) (float64, error) {
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get("http://" + n.httpAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, errors.Join(sc.Err(), fmt.Errorf("metric %s not found", name))
}

// cpuProfile saves a CPU profile of secs seconds from the node's
// /debug/pprof/profile (recoverd --pprof).
func (n *node) cpuProfile(ctx context.Context, secs int, path string) error {
	c := http.Client{Timeout: time.Duration(secs+30) * time.Second, Transport: &http.Transport{Proxy: nil}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", n.httpAddr, secs), nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", n.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", n.name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ---- MinIO ----

type minioServer struct {
	*proc
	endpoint, access, secret string
}

func (b *bench) startMinIO(ctx context.Context) (*minioServer, error) {
	dir := filepath.Join(b.work, "minio")
	os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	addr, err := launch.FreeAddr()
	if err != nil {
		return nil, err
	}
	console, err := launch.FreeAddr()
	if err != nil {
		return nil, err
	}
	m := &minioServer{endpoint: addr, access: "bench" + randomHex(6), secret: randomHex(16)}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "MINIO_ROOT_USER=" + m.access, "MINIO_ROOT_PASSWORD=" + m.secret,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CALLHOME_ENABLE=off", "MINIO_SCANNER_SPEED=slowest", "GOMAXPROCS=2"}
	m.proc, err = startProc("minio", filepath.Join(b.logDir, "minio.log"), env, b.minio, "server", "--quiet", "--address", addr,
		"--console-address", console, "--certs-dir", filepath.Join(dir, "certs"), filepath.Join(dir, "data"))
	if err != nil {
		return nil, err
	}
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	for deadline := time.Now().Add(60 * time.Second); ; {
		if m.Exited() {
			return nil, fmt.Errorf("minio exited at start:\n%s", m.LogTail(20))
		}
		if resp, err := c.Get("http://" + addr + "/minio/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			m.stop(10 * time.Second)
			return nil, fmt.Errorf("minio not ready:\n%s", m.LogTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// s3Env is what recoverd and recoverctl need to reach the bench's MinIO.
func (m *minioServer) s3Env() []string {
	return []string{"RECOVERD_S3_ENDPOINT=" + m.endpoint, "RECOVERD_S3_ACCESS_KEY=" + m.access,
		"RECOVERD_S3_SECRET_KEY=" + m.secret, "RECOVERD_S3_INSECURE=true"}
}

// rcloneEnv configures the remote "minio:" for rclone, and nothing else.
func (m *minioServer) rcloneEnv(conf string) []string {
	return []string{"RCLONE_CONFIG=" + conf, "RCLONE_CONFIG_MINIO_TYPE=s3", "RCLONE_CONFIG_MINIO_PROVIDER=Minio",
		"RCLONE_CONFIG_MINIO_ENDPOINT=http://" + m.endpoint, "RCLONE_CONFIG_MINIO_REGION=us-east-1",
		"RCLONE_CONFIG_MINIO_ACCESS_KEY_ID=" + m.access, "RCLONE_CONFIG_MINIO_SECRET_ACCESS_KEY=" + m.secret}
}

// ---- one-shot commands ----

// shellResult is what a command run under `sh -c` used: the shell waits for
// every child, so its rusage and /proc/self/io cover the whole tree.
type shellResult struct {
	wall   time.Duration
	cpu    float64
	maxRSS int64
	io     ioCounters
}

// runTimed runs script under sh (positional args $1...), printing
// /proc/$$/io at the end, and measures it.
func runTimed(ctx context.Context, env []string, logPath, script string, args ...string) (shellResult, error) {
	full := "set -e\n" + script + "\ncat /proc/$$/io >&3\n"
	r, w, err := os.Pipe()
	if err != nil {
		return shellResult{}, err
	}
	defer r.Close()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		w.Close()
		return shellResult{}, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, "sh", append([]string{"-c", full, "sh"}, args...)...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := make(chan string, 1)
	go func() {
		var sb strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		out <- sb.String()
	}()
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	w.Close()
	ioText := <-out
	if err != nil {
		b, _ := os.ReadFile(logPath)
		tail := string(b)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return shellResult{}, fmt.Errorf("%s: %w\n%s", strings.SplitN(script, "\n", 2)[0], err, tail)
	}
	res := shellResult{wall: wall, io: parseIO(ioText)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.cpu = tv(ru.Utime) + tv(ru.Stime)
		res.maxRSS = ru.Maxrss << 10
	}
	return res, nil
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
