package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine/docapi"
	"github.com/recoverd/recoverd/internal/buildinfo"
	"github.com/recoverd/recoverd/recovery"
	"github.com/recoverd/recoverd/transfer"
)

// listenAndServe serves the node's control API (RecoveryService,
// SnapshotService, ShardService), peer API (PeerService) and HTTP
// (metrics, health, pprof) until ctx ends or a listener fails, then shuts
// down: recoveries pause, the gRPC servers drain (10s at most each).
func listenAndServe(ctx context.Context, cfg Config, sec *security, log *slog.Logger, n *node) error {
	// Health answers per service ("" is the whole listener): each listener
	// names the services it serves.
	healthSrv, peerHealth := health.NewServer(), health.NewServer()
	services := []string{pb.RecoveryService_ServiceDesc.ServiceName, pb.SnapshotService_ServiceDesc.ServiceName}
	if n.shards != nil { // the engine in this process: its document API too
		services = append(services, pb.ShardService_ServiceDesc.ServiceName)
	}
	for _, name := range services {
		healthSrv.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	peerHealth.SetServingStatus(pb.PeerService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	control := grpc.NewServer(append(append(transfer.ServerOptions(), sec.controlCreds()), sec.interceptors()...)...)
	pb.RegisterRecoveryServiceServer(control, recovery.NewService(n.mgr))
	pb.RegisterSnapshotServiceServer(control, n.snapSvc)
	if n.shards != nil {
		pb.RegisterShardServiceServer(control, docapi.New(n.shards))
	}
	healthpb.RegisterHealthServer(control, healthSrv)
	reflection.Register(control)
	peer := grpc.NewServer(append(append(transfer.ServerOptions(), sec.peerCreds()), sec.peerInterceptors()...)...)
	pb.RegisterPeerServiceServer(peer, n.peerSrv)
	healthpb.RegisterHealthServer(peer, peerHealth)

	var ready atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.metrics, promhttp.HandlerOpts{Registry: n.metrics}))
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
	peerLis := n.peerSrv.DataListener(listeners["peer"], transfer.DataConfig{TLS: sec.peer, Authorize: sec.verifyPeer})
	go func() { errc <- peer.Serve(peerLis) }()
	go func() {
		if err := httpSrv.Serve(listeners["http"]); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	ready.Store(true)
	repoName := "disabled"
	if n.repo != nil {
		repoName = n.repo.String()
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
	n.mgr.Close()
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
