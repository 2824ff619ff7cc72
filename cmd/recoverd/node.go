package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/recoverd/recoverd/cleanup"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/engine/remote"
	"github.com/recoverd/recoverd/internal/buildinfo"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/recovery"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/snapshot/lifecycle"
	"github.com/recoverd/recoverd/transfer"
)

// node is the packages of one recoverd wired together: the engine, the
// repository, the peer server, the recovery manager, the snapshot and
// document services, the snapshot policy and the cleanup sweeper, with the metrics registry
// they export on.
type node struct {
	metrics *prometheus.Registry
	shards  *embedded.Registry  // the in-process engine's own API (ShardService); nil with --engine
	eng     engine.Engine       // in process, or the engine process's (--engine)
	repo    snapshot.Repository // nil: snapshots disabled
	peerSrv *transfer.PeerServer
	dialer  *transfer.Peers
	mgr     *recovery.Manager
	snapSvc *lifecycle.Service
	policy  *lifecycle.Policy // nil: no scheduled snapshots
	sweeper *cleanup.Sweeper
	closers []func() // run by close, last first
}

// openNode opens the node's engine and wires the packages onto it.
// Recoveries the node was running when it stopped resume.
func openNode(ctx context.Context, cfg Config, sec *security, log *slog.Logger) (n *node, err error) {
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	n = &node{metrics: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	n.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildinfo.Register(n.metrics, buildinfo.Read())
	throttle := transfer.NewThrottle(cfg.Throttle)

	if err := n.openEngine(ctx, cfg, log); err != nil {
		return n, err
	}
	// One retry policy, from --retry-budget: peer streams and calls to a
	// source retry for all of it; repository calls and snapshot downloads
	// for at most the repository's default budget (30s) of it.
	peerRetry := retry.Options{MaxElapsed: cfg.RetryBudget}
	repoRetry := retry.Options{MaxElapsed: min(cfg.RetryBudget, retry.Repository.MaxElapsed)}
	if n.repo, err = openRepo(cfg, snapshot.NewRequestMetrics(n.metrics), repoRetry); err != nil {
		return n, fmt.Errorf("snapshot repository: %w", err)
	}
	n.peerSrv = transfer.NewPeerServer(n.eng, transfer.PeerServerConfig{ChunkSize: int(cfg.ChunkSize), DisableCompression: !cfg.Compression,
		Throttle: throttle, MaxPins: cfg.MaxOutgoing, MaxPinsPerHolder: cfg.MaxPinsPerHolder, MaxLeasesPerHolder: cfg.MaxLeasesPerHolder, Logger: log})
	n.onClose(func() { n.peerSrv.Close() })
	n.peerSrv.RegisterMetrics(n.metrics)

	digestCheck, err := recovery.ParseDigestCheck(cfg.VerifyDigest)
	if err != nil {
		return n, fmt.Errorf("--verify-digest: %w", err)
	}
	diskMargin, err := recovery.ParseDiskMargin(cfg.DiskMargin)
	if err != nil {
		return n, fmt.Errorf("--disk-margin: %w", err)
	}
	n.dialer = transfer.NewPeers(append(transfer.DialOptions(), sec.dialCreds())...)
	if cfg.DataConns {
		n.dialer.EnableData(sec.dial)
	}
	n.onClose(n.dialer.Close)
	n.mgr = recovery.NewManager(recovery.Config{
		NodeID: cfg.NodeID, Engine: n.eng, Dial: n.dialer.Dial, Repo: n.repo, UseSnapshots: cfg.UseSnapshots,
		Throttle: throttle, MaxConcurrent: cfg.MaxRecoveries, MaxSnapshotDownloads: cfg.MaxSnapshotDownloads,
		Fetch: transfer.FetchOptions{Parallel: cfg.ParallelFiles, ChunkSize: int(cfg.ChunkSize), NoCompression: !cfg.Compression,
			IdleTimeout: cfg.IdleTimeout, Retry: peerRetry},
		Ops:    transfer.OpsOptions{IdleTimeout: cfg.IdleTimeout, Retry: peerRetry},
		PinTTL: cfg.PinTTL, PinWait: cfg.PinWait, DataDir: cfg.Data, DiskMargin: diskMargin, KeepFinished: cfg.KeepFinished, VerifyDigest: digestCheck, StateDir: filepath.Join(cfg.Data, "recoveries"),
		NewDownloader: func() *snapshot.Downloader {
			return &snapshot.Downloader{Retry: repoRetry}
		},
		Metrics: recovery.NewMetrics(n.metrics), Logger: log,
	})
	if err := n.mgr.Open(ctx); err != nil {
		n.mgr.Close()
		return n, err
	}
	n.onClose(n.mgr.Close)
	n.snapSvc = lifecycle.NewService(lifecycle.ServiceConfig{Repo: n.repo, Engine: n.eng, MaxUploads: cfg.MaxSnapshotUploads, DeletionDelay: cfg.DeletionDelay,
		Recovering: n.mgr.ActiveStagings, Metrics: lifecycle.NewMetrics(n.metrics), Logger: log.With("component", "snapshot"),
		Throttle: func(ctx context.Context, b int) error { _, err := throttle.WaitN(ctx, b); return err }})
	if n.repo != nil && cfg.SnapshotInterval > 0 {
		if n.policy, err = lifecycle.NewPolicy(n.snapSvc, policyConfig(cfg, log.With("component", "snapshot-policy"))); err != nil {
			return n, err
		}
		n.metrics.MustRegister(n.policy)
	}
	n.sweeper, err = cleanup.New(cleanup.Config{Engine: n.eng, Running: n.mgr.ActiveStagings, Uploading: n.snapSvc.IsUploading,
		Repo: n.repo, UploadGrace: cfg.UploadGrace, DeletionDelay: cfg.DeletionDelay, Logger: log.With("component", "cleanup"), Registerer: n.metrics})
	return n, err
}

// openEngine opens the node's engine: with --engine, the engine process
// serving EngineService on that socket (recoverd then opens no shard and
// serves no ShardService: clients write to the engine's own API);
// otherwise the reference engine in this process, on --data.
func (n *node) openEngine(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.Engine != "" {
		// The engine may start after recoverd (two containers of one
		// pod): its socket is waited for, within --retry-budget.
		var c *remote.Client
		err := retry.Loop{Options: retry.Options{MaxElapsed: cfg.RetryBudget}}.Do(ctx, func(ctx context.Context) (err error) {
			c, err = remote.Dial(ctx, cfg.Engine)
			return err
		})
		if err != nil {
			return fmt.Errorf("--engine: no engine answered at %s within --retry-budget %v: %w", cfg.Engine, cfg.RetryBudget, err)
		}
		n.eng = c
		n.onClose(func() { c.Close() })
		v := c.Version()
		log.Info("engine", "address", cfg.Engine, "writer_version", v.Writer, "max_format", v.MaxFormat)
		return nil
	}
	n.shards = embedded.NewRegistry(cfg.Data, shardstore.Options{RetainOps: cfg.RetainOps, LeaseTTL: cfg.LeaseTTL, CopyRetention: cfg.CopyRetention, KeepStaging: true, Logger: log}, log)
	eng := embedded.New(n.shards)
	n.eng = eng
	n.onClose(func() { eng.Close() })
	if err := n.shards.Discover(); err != nil { // each shard is opened once in the background
		return err
	}
	n.shards.RegisterMetrics(n.metrics)
	return nil
}

func (n *node) onClose(f func()) { n.closers = append(n.closers, f) }

// close stops what openNode started, last first: the recoveries pause
// (they resume at the next start), connections to peers close, the peer
// server releases its pins, the engine closes its shards.
func (n *node) close() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		n.closers[i]()
	}
	n.closers = nil
}
