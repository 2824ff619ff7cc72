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
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/internal/buildinfo"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/recovery"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

// node is the packages of one recoverd wired together: the engine, the
// repository, the peer server, the recovery manager, the snapshot and
// document services and the cleanup sweeper, with the metrics registry
// they export on.
type node struct {
	metrics *prometheus.Registry
	shards  *embedded.Registry // the in-process engine's own API (ShardService)
	eng     *embedded.Engine
	repo    snapshot.Repository // nil: snapshots disabled
	peerSrv *transfer.PeerServer
	dialer  *transfer.Peers
	mgr     *recovery.Manager
	snapSvc *snapshotService
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

	n.shards = embedded.NewRegistry(cfg.Data, shardstore.Options{RetainOps: cfg.RetainOps, LeaseTTL: cfg.LeaseTTL, KeepStaging: true, Logger: log}, log)
	n.eng = embedded.New(n.shards)
	n.onClose(func() { n.eng.Close() })
	if err := n.shards.OpenAll(); err != nil {
		return n, err
	}
	n.shards.RegisterMetrics(n.metrics)
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
	n.snapSvc = &snapshotService{repo: n.repo, shards: n.shards, throttle: throttle, deletionDelay: cfg.DeletionDelay, recovering: n.mgr.ActiveStagings}
	n.sweeper, err = cleanup.New(cleanup.Config{Engine: n.eng, Running: n.mgr.ActiveStagings, Uploading: n.snapSvc.isUploading,
		Repo: n.repo, UploadGrace: cfg.UploadGrace, DeletionDelay: cfg.DeletionDelay, Logger: log.With("component", "cleanup"), Registerer: n.metrics})
	return n, err
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
