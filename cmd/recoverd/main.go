// Command recoverd is the shard recovery sidecar. It runs next to a storage
// node, serves the control API (RecoveryService, SnapshotService,
// ShardService) and the peer API (PeerService) over gRPC, runs recoveries
// onto this node, serves other nodes' recoveries from it, and exposes
// Prometheus metrics and health on HTTP. See --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"

	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/cleanup"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/internal/buildinfo"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/recovery"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func newLogger(cfg Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch cfg.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, got %q", cfg.LogFormat)
}

// run is main without the exit: 0 after a clean shutdown, 1 when the node
// failed, 2 for bad configuration.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, printCfg, err := loadConfig(args, getenv, stdout)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "recoverd:", err)
		return 2
	}
	if printCfg {
		writeConfig(stdout, cfg)
		return 0
	}
	if cfg.Data == "" {
		fmt.Fprintln(stderr, "recoverd: --data is required (the node's data directory)")
		return 2
	}
	if err := shardstore.ValidateName(cfg.NodeID); err != nil {
		fmt.Fprintf(stderr, "recoverd: --node-id names this node's leases and pins on sources: %v\n", err)
		return 2
	}
	if cfg.UploadGrace <= 0 || cfg.CleanupInterval < 0 {
		fmt.Fprintf(stderr, "recoverd: --upload-grace must be positive (it protects uploads in progress) and --cleanup-interval not negative (0 = only at start); got %v and %v\n",
			cfg.UploadGrace, cfg.CleanupInterval)
		return 2
	}
	if cfg.DeletionDelay <= 0 {
		fmt.Fprintf(stderr, "recoverd: --deletion-delay must be positive (it protects snapshots other processes are creating); got %v\n", cfg.DeletionDelay)
		return 2
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "recoverd:", err)
		return 2
	}
	sec, err := loadSecurity(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "recoverd:", err)
		return 2
	}
	if _, err := recovery.ParseDigestCheck(cfg.VerifyDigest); err != nil {
		fmt.Fprintln(stderr, "recoverd: --verify-digest:", err)
		return 2
	}
	if _, err := recovery.ParseDiskMargin(cfg.DiskMargin); err != nil {
		fmt.Fprintln(stderr, "recoverd: --disk-margin:", err)
		return 2
	}
	if _, err := repoLocation(cfg); err != nil {
		fmt.Fprintln(stderr, "recoverd: --repo:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, cfg, sec, log); err != nil {
		log.Error("recoverd stopped", "error", err)
		return 1
	}
	return 0
}

// repoLocation is the repository --repo names, with the --s3-* flags
// merged by snapshot.ParseLocation (nil for --repo none).
func repoLocation(cfg Config) (*snapshot.Location, error) {
	url := cfg.Repo
	switch url {
	case "none":
		return nil, nil
	case "":
		abs, err := filepath.Abs(filepath.Join(cfg.Data, "snapshots"))
		if err != nil {
			return nil, err
		}
		url = "file://" + abs
	}
	loc, err := snapshot.ParseLocation(url, snapshot.LocationFlags{Endpoint: cfg.S3Endpoint, Region: cfg.S3Region, Insecure: cfg.S3Insecure})
	return &loc, err
}

func openRepo(cfg Config, requests *snapshot.RequestMetrics, policy retry.Options) (snapshot.Repository, error) {
	loc, err := repoLocation(cfg)
	if loc == nil || err != nil {
		return nil, err
	}
	return loc.Open(snapshot.S3Options{AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey,
		RequestTimeout: cfg.S3Timeout, ReadIdleTimeout: cfg.S3Timeout, Metrics: requests, Retry: policy})
}

// peers keeps one client connection per source address.
type peers struct {
	opts  []grpc.DialOption
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (p *peers) dial(_ context.Context, addr string) (pb.PeerServiceClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return pb.NewPeerServiceClient(c), nil
	}
	c, err := grpc.NewClient(addr, p.opts...)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return pb.NewPeerServiceClient(c), nil
}

func (p *peers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		c.Close()
		delete(p.conns, addr)
	}
}

func serve(ctx context.Context, cfg Config, sec *security, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildinfo.Register(reg, buildinfo.Read())
	throttle := transfer.NewThrottle(cfg.Throttle)

	shards := embedded.NewRegistry(cfg.Data, shardstore.Options{RetainOps: cfg.RetainOps, LeaseTTL: cfg.LeaseTTL, KeepStaging: true, Logger: log}, log)
	eng := embedded.New(shards)
	defer eng.Close()
	if err := shards.OpenAll(); err != nil {
		return err
	}
	// One retry policy, from --retry-budget: peer streams and calls to a
	// source retry for all of it; repository calls and snapshot downloads
	// for at most the repository's default budget (30s) of it.
	peerRetry := retry.Options{MaxElapsed: cfg.RetryBudget}
	repoRetry := retry.Options{MaxElapsed: min(cfg.RetryBudget, retry.Repository.MaxElapsed)}
	repo, err := openRepo(cfg, snapshot.NewRequestMetrics(reg), repoRetry)
	if err != nil {
		return fmt.Errorf("snapshot repository: %w", err)
	}
	peerSrv := transfer.NewPeerServer(eng, transfer.PeerServerConfig{ChunkSize: int(cfg.ChunkSize), DisableCompression: !cfg.Compression,
		Throttle: throttle, MaxPins: cfg.MaxOutgoing, MaxPinsPerHolder: cfg.MaxPinsPerHolder, MaxLeasesPerHolder: cfg.MaxLeasesPerHolder, Logger: log})
	defer peerSrv.Close()
	peerSrv.RegisterMetrics(reg)
	shards.RegisterMetrics(reg)

	digestCheck, err := recovery.ParseDigestCheck(cfg.VerifyDigest)
	if err != nil {
		return fmt.Errorf("--verify-digest: %w", err)
	}
	diskMargin, err := recovery.ParseDiskMargin(cfg.DiskMargin)
	if err != nil {
		return fmt.Errorf("--disk-margin: %w", err)
	}
	dialer := &peers{opts: append(transfer.DialOptions(), sec.dialCreds()), conns: map[string]*grpc.ClientConn{}}
	defer dialer.close()
	mgr := recovery.NewManager(recovery.Config{
		NodeID: cfg.NodeID, Engine: eng, Dial: dialer.dial, Repo: repo, UseSnapshots: cfg.UseSnapshots,
		Throttle: throttle, MaxConcurrent: cfg.MaxRecoveries, MaxSnapshotDownloads: cfg.MaxSnapshotDownloads,
		Fetch: transfer.FetchOptions{Parallel: cfg.ParallelFiles, ChunkSize: int(cfg.ChunkSize), NoCompression: !cfg.Compression,
			IdleTimeout: cfg.IdleTimeout, Retry: peerRetry},
		Ops:    transfer.OpsOptions{IdleTimeout: cfg.IdleTimeout, Retry: peerRetry},
		PinTTL: cfg.PinTTL, PinWait: cfg.PinWait, DataDir: cfg.Data, DiskMargin: diskMargin, KeepFinished: cfg.KeepFinished, VerifyDigest: digestCheck, StateDir: filepath.Join(cfg.Data, "recoveries"),
		NewDownloader: func() *snapshot.Downloader {
			return &snapshot.Downloader{Retry: repoRetry}
		},
		Metrics: recovery.NewMetrics(reg), Logger: log,
	})
	if err := mgr.Open(ctx); err != nil {
		return err
	}
	defer mgr.Close()
	snapSvc := &snapshotService{repo: repo, shards: shards, throttle: throttle, deletionDelay: cfg.DeletionDelay, recovering: mgr.ActiveStagings}

	// Cleanup: at start (the shards are open) and every --cleanup-interval.
	sweeper, err := cleanup.New(cleanup.Config{Engine: eng, Running: mgr.ActiveStagings, Uploading: snapSvc.isUploading,
		Repo: repo, UploadGrace: cfg.UploadGrace, DeletionDelay: cfg.DeletionDelay, Logger: log.With("component", "cleanup"), Registerer: reg})
	if err != nil {
		return err
	}
	sweepCtx, stopSweep := context.WithCancel(ctx)
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		sweeper.Run(snapshot.CountRequests(sweepCtx, snapshot.KindCleanup, nil), cfg.CleanupInterval)
	}()
	defer func() { stopSweep(); <-sweepDone }()

	// Health answers per service ("" is the whole listener): each listener
	// names the services it serves.
	healthSrv, peerHealth := health.NewServer(), health.NewServer()
	for _, name := range []string{pb.RecoveryService_ServiceDesc.ServiceName, pb.SnapshotService_ServiceDesc.ServiceName,
		pb.ShardService_ServiceDesc.ServiceName} {
		healthSrv.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	peerHealth.SetServingStatus(pb.PeerService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	control := grpc.NewServer(append(append(transfer.ServerOptions(), sec.controlCreds()), sec.interceptors()...)...)
	pb.RegisterRecoveryServiceServer(control, recovery.NewService(mgr))
	pb.RegisterSnapshotServiceServer(control, snapSvc)
	pb.RegisterShardServiceServer(control, &shardService{shards: shards})
	healthpb.RegisterHealthServer(control, healthSrv)
	reflection.Register(control)
	peer := grpc.NewServer(append(append(transfer.ServerOptions(), sec.peerCreds()), sec.peerInterceptors()...)...)
	pb.RegisterPeerServiceServer(peer, peerSrv)
	healthpb.RegisterHealthServer(peer, peerHealth)

	var ready atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	httpSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	listeners := map[string]net.Listener{}
	for name, addr := range map[string]string{"grpc": cfg.GRPCAddr, "peer": cfg.PeerAddr, "http": cfg.HTTPAddr} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, o := range listeners {
				o.Close()
			}
			return fmt.Errorf("listen %s on %s: %w", name, addr, err)
		}
		listeners[name] = l
	}
	errc := make(chan error, 3)
	go func() { errc <- control.Serve(listeners["grpc"]) }()
	go func() { errc <- peer.Serve(listeners["peer"]) }()
	go func() {
		if err := httpSrv.Serve(listeners["http"]); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	ready.Store(true)
	repoName := "disabled"
	if repo != nil {
		repoName = repo.String()
	}
	log.Info("recoverd ready", "node", cfg.NodeID, "grpc", listeners["grpc"].Addr().String(), "peer", listeners["peer"].Addr().String(),
		"http", listeners["http"].Addr().String(), "data", cfg.Data, "repo", repoName, "tls", !sec.insecure, "version", buildinfo.Read().String())

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: pausing recoveries (they resume at the next start, from what they staged)")
	case serveErr = <-errc:
		log.Error("a listener failed; shutting down", "error", serveErr)
	}
	ready.Store(false)
	healthSrv.Shutdown()
	peerHealth.Shutdown()
	mgr.Close()
	stopGracefully(control, 10*time.Second)
	stopGracefully(peer, 10*time.Second)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	httpSrv.Shutdown(sctx)
	cancel()
	return serveErr
}

func stopGracefully(s *grpc.Server, d time.Duration) {
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		s.Stop()
	}
}
