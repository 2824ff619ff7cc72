// Command shardd is the reference storage engine as a process of its own:
// it owns the shards under --data (shardstore, through engine/embedded),
// serves their document API (ShardService: create, index, delete, get,
// apply, flush, merge, promote, stats, digest) on --listen, and serves the
// engine contract (EngineService) on the Unix socket --socket, for a
// recoverd started with --engine unix://<socket> beside it on the same
// data volume. See --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine/docapi"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/engine/remote"
	"github.com/recoverd/recoverd/internal/buildinfo"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/transfer"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is shardd's command line.
type config struct {
	Data       string
	Listen     string
	Socket     string
	SocketMode string
	RetainOps  int64
	LeaseTTL   time.Duration
	// CopyRetention: how long a copy's lease lives unacknowledged.
	CopyRetention time.Duration
	LogLevel      string
	LogFormat     string
}

const long = `shardd: the reference storage engine, beside recoverd.

It owns the shards under --data (nothing else may open them), serves their
document API (ShardService) on --listen, and serves the engine contract
(EngineService, api/recoverdv1/engine.proto) on the Unix socket --socket.
recoverd started with --engine unix://<socket> on the same data volume
recovers shardd's shards through it: recoverd reads pinned files and writes
staged files on the volume itself; no file byte crosses the socket.

The socket file is created with --socket-mode, replaced when a dead shardd
left it, refused when a live one answers on it, and removed at exit.
SIGTERM or SIGINT stops shardd: the engine sessions end (their stagings are
kept for recoverd to resume), the calls under way finish, and the shards
close with their ops durable.

Exit codes: 0 after a clean shutdown, 1 shardd failed, 2 bad flags.`

const examples = `  shardd --data /var/lib/shards --socket /run/engine/engine.sock --listen 127.0.0.1:7500
  recoverd --data /var/lib/shards --engine unix:///run/engine/engine.sock --node-id n1 --insecure`

// newCommand is shardd's command line; RunE serves with the parsed config.
func newCommand(cfg *config, args []string) *cobra.Command {
	cmd := &cobra.Command{
		Use: "shardd", Short: "The reference storage engine, beside recoverd", Long: long, Example: examples,
		SilenceUsage: true, SilenceErrors: true,
		Version: fmt.Sprintf("%s; shard writer version %s, format %d", buildinfo.Read(), shardstore.WriterVersion, shardstore.FormatVersion),
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unexpected arguments %q", args)
			}
			return nil
		},
	}
	cmd.SetVersionTemplate("shardd {{.Version}}\n")
	cmd.SetArgs(append([]string{}, args...))
	fl := cmd.Flags()
	fl.StringVar(&cfg.Data, "data", "", "data directory: the shards (required)")
	fl.StringVar(&cfg.Listen, "listen", "127.0.0.1:7500", "host:port of the document API (ShardService, gRPC, plaintext: keep it on loopback or a private network)")
	fl.StringVar(&cfg.Socket, "socket", "", "path of the engine socket (EngineService); default <data>/engine.sock")
	fl.StringVar(&cfg.SocketMode, "socket-mode", "0600", "file mode of the engine socket: 0600 (recoverd runs as shardd's user) or 0660 (as a user of its group)")
	fl.Int64Var(&cfg.RetainOps, "retain-ops", 10000, "ops kept below the local checkpoint for ops-based recoveries, beyond what leases ask")
	fl.DurationVar(&cfg.LeaseTTL, "lease-ttl", 5*time.Minute, "retention lease lifetime without renewal")
	fl.DurationVar(&cfg.CopyRetention, "copy-retention", 12*time.Hour, "how long a recovered copy's retention lease (a recovery's lease handed over to replication) keeps the ops the copy lacks once it acknowledges nothing (ShardService.AckReplica)")
	fl.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&cfg.LogFormat, "log-format", "text", "text or json")
	return cmd
}

// exitError carries run's exit code out of cobra.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }

func run(args []string, stdout, stderr io.Writer) int {
	var cfg config
	cmd := newCommand(&cfg, args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.RunE = func(*cobra.Command, []string) error {
		log, err := newLogger(cfg, stderr)
		if err != nil {
			return exitError{2, err}
		}
		if cfg.Data == "" {
			return exitError{2, errors.New("--data is required")}
		}
		mode, err := strconv.ParseUint(cfg.SocketMode, 8, 32)
		if err != nil || mode&^0o777 != 0 {
			return exitError{2, fmt.Errorf("--socket-mode %q is not an octal file mode", cfg.SocketMode)}
		}
		if cfg.Socket == "" {
			cfg.Socket = filepath.Join(cfg.Data, "engine.sock")
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		if err := serve(ctx, cfg, os.FileMode(mode), log); err != nil {
			return exitError{1, err}
		}
		return nil
	}
	err := cmd.Execute()
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		fmt.Fprintln(stderr, "shardd:", ee.err)
		return ee.code
	default:
		fmt.Fprintln(stderr, "shardd:", err)
		return 2
	}
}

func newLogger(cfg config, w io.Writer) (*slog.Logger, error) {
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

// serve opens the shards and serves both APIs until ctx ends.
func serve(ctx context.Context, cfg config, mode os.FileMode, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	reg := embedded.NewRegistry(cfg.Data, shardstore.Options{RetainOps: cfg.RetainOps, LeaseTTL: cfg.LeaseTTL, CopyRetention: cfg.CopyRetention, KeepStaging: true, Logger: log}, log)
	if err := reg.OpenAll(); err != nil {
		reg.CloseAll()
		return err
	}
	eng := embedded.New(reg)
	defer eng.Close()

	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	sock, err := remote.Listen(cfg.Socket, mode)
	if err != nil {
		lis.Close()
		return fmt.Errorf("--socket: %w", err)
	}
	docs := grpc.NewServer(transfer.ServerOptions()...)
	pb.RegisterShardServiceServer(docs, docapi.New(reg))
	hs := health.NewServer()
	hs.SetServingStatus(pb.ShardService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(docs, hs)
	reflection.Register(docs)
	engSrv := remote.NewServer(eng, log.With("component", "engine-socket"))

	errc := make(chan error, 2)
	go func() { errc <- docs.Serve(lis) }()
	go func() { errc <- engSrv.Serve(sock) }()
	log.Info("shardd serving", "data", cfg.Data, "listen", lis.Addr().String(), "socket", cfg.Socket, "shards", len(reg.List()))

	var served error
	select {
	case <-ctx.Done():
		log.Info("shardd stopping")
	case served = <-errc:
		log.Error("shardd: a listener failed", "err", served)
	}
	hs.Shutdown()
	stopCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	engSrv.Stop(stopCtx)
	done := make(chan struct{})
	go func() { docs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-stopCtx.Done():
		docs.Stop()
	}
	if err := eng.Close(); err != nil {
		return errors.Join(served, fmt.Errorf("close the shards: %w", err))
	}
	log.Info("shardd stopped")
	return served
}
