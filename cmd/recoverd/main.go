// Command recoverd is the shard recovery sidecar. It runs next to a storage
// node, serves the control API (RecoveryService, SnapshotService,
// ShardService) and the peer API (PeerService) over gRPC, runs recoveries
// onto this node, serves other nodes' recoveries from it, and exposes
// Prometheus metrics and health on HTTP. See --help.
//
// The command only wires: main.go reads the flags, node.go opens the
// engine and wires the packages onto it (each registers its own metrics),
// listen.go serves the listeners and shuts them down.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"

	"syscall"

	"github.com/spf13/pflag"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/recovery"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/snapshot/lifecycle"
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
	if err := engine.ValidateName(cfg.NodeID); err != nil {
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
	if err := policyConfig(cfg, nil).Validate(); err != nil {
		fmt.Fprintln(stderr, "recoverd: --snapshot-*:", err)
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

// policyConfig is the snapshot policy --snapshot-* describe.
func policyConfig(cfg Config, log *slog.Logger) lifecycle.PolicyConfig {
	return lifecycle.PolicyConfig{Interval: cfg.SnapshotInterval, Jitter: cfg.SnapshotJitter, Keep: cfg.SnapshotKeep, MaxAge: cfg.SnapshotMaxAge,
		Scope: lifecycle.Scope(cfg.SnapshotScope), LeaseMaxOps: cfg.SnapshotLeaseMaxOps, LeaseMaxBytes: cfg.SnapshotLeaseMaxBytes,
		DeletionDelay: cfg.DeletionDelay, NodeID: cfg.NodeID, Logger: log}
}

// serve runs the node until ctx ends or a listener fails: it opens the
// engine and wires the packages onto it (openNode), sweeps leftovers at
// start and every --cleanup-interval, runs the snapshot policy
// (--snapshot-interval), and serves the control, peer and
// HTTP listeners (listenAndServe).
func serve(ctx context.Context, cfg Config, sec *security, log *slog.Logger) error {
	n, err := openNode(ctx, cfg, sec, log)
	if err != nil {
		return err
	}
	defer n.close()
	sweepCtx, stopSweep := context.WithCancel(ctx)
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		if n.shards != nil { // the first sweep once every shard was opened once
			select {
			case <-n.shards.ScanDone():
			case <-sweepCtx.Done():
				return
			}
		}
		n.sweeper.Run(snapshot.CountRequests(sweepCtx, snapshot.KindCleanup, nil), cfg.CleanupInterval)
	}()
	defer func() { stopSweep(); <-sweepDone }()
	if n.policy != nil {
		policyCtx, stopPolicy := context.WithCancel(ctx)
		policyDone := make(chan struct{})
		go func() { defer close(policyDone); n.policy.Run(policyCtx) }()
		defer func() { stopPolicy(); <-policyDone }()
	}
	return listenAndServe(ctx, cfg, sec, log, n)
}
