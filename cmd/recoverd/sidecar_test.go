package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/launch"
	"github.com/recoverd/recoverd/internal/testutil"
)

// sidecar is one node as a sidecar: shardd (the binary) owning the shards,
// and recoverd's wiring in this process with --engine on its socket.
type sidecar struct {
	shardd *launch.Shardd
	cfg    Config
	docs   pb.ShardServiceClient
}

func startSidecar(t *testing.T, name string) *sidecar {
	t.Helper()
	data := t.TempDir()
	sockDir, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sd, err := launch.StartShardd(context.Background(), launch.SharddOptions{Bin: testutil.Binary(t, "shardd"), Name: name, Data: data,
		Socket: filepath.Join(sockDir, "engine.sock"), LogPath: filepath.Join(t.TempDir(), "shardd.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Stop(syscall.SIGTERM, 20*time.Second) })
	cfg := defaultConfig()
	cfg.Data, cfg.NodeID, cfg.Engine = data, name, sd.EngineTarget()
	cfg, _ = startServe(t, cfg, &syncBuf{})
	conn, err := grpc.NewClient(sd.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &sidecar{shardd: sd, cfg: cfg, docs: pb.NewShardServiceClient(conn)}
}

func dialControl(t *testing.T, cfg Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(cfg.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestSidecarRecovery: recoverd --engine recovers a shard of one shardd
// into another through their sockets, files on the volume and ops over
// the peer API, and serves no ShardService itself.
func TestSidecarRecovery(t *testing.T) {
	ctx := context.Background()
	a, b := startSidecar(t, "n1"), startSidecar(t, "n2")
	id := &pb.ShardId{Index: "docs"}
	if _, err := a.docs.CreateShard(ctx, &pb.CreateShardRequest{Shard: id}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		var docs []*pb.Doc
		for j := range 100 {
			docs = append(docs, &pb.Doc{Key: fmt.Sprintf("k%d-%d", i, j), Value: []byte(fmt.Sprint("v", i, j))})
		}
		if _, err := a.docs.Index(ctx, &pb.IndexRequest{Shard: id, Docs: docs}); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if _, err := a.docs.Flush(ctx, &pb.FlushRequest{Shard: id}); err != nil {
				t.Fatal(err)
			}
		}
	}

	if _, err := pb.NewShardServiceClient(dialControl(t, a.cfg)).Stats(ctx, &pb.StatsRequest{Shard: id}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("recoverd --engine answers ShardService: %v", err)
	}
	rec := pb.NewRecoveryServiceClient(dialControl(t, b.cfg))
	started, err := rec.StartRecovery(ctx, &pb.StartRecoveryRequest{Shard: id, SourceAddress: a.cfg.PeerAddr})
	if err != nil {
		t.Fatal(err)
	}
	var r *pb.Recovery
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got, err := rec.GetRecovery(ctx, &pb.GetRecoveryRequest{Id: started.Recovery.Id})
		if err != nil {
			t.Fatal(err)
		}
		if r = got.Recovery; r.Stage == pb.Stage_STAGE_DONE || r.Stage == pb.Stage_STAGE_FAILED || r.Stage == pb.Stage_STAGE_CANCELLED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recovery did not end: %v", r.Stage)
		}
	}
	if r.Stage != pb.Stage_STAGE_DONE {
		t.Fatalf("the recovery ended %v: %s", r.Stage, r.Error)
	}
	da, err := a.docs.Digest(ctx, &pb.DigestRequest{Shard: id})
	if err != nil {
		t.Fatal(err)
	}
	db, err := b.docs.Digest(ctx, &pb.DigestRequest{Shard: id})
	if err != nil {
		t.Fatal(err)
	}
	if da.Digest != db.Digest || da.Seqno.MaxSeqno != 299 || db.Seqno.MaxSeqno != 299 {
		t.Fatalf("source %v, recovered copy %v", da, db)
	}
	got, err := b.docs.Get(ctx, &pb.GetRequest{Shard: id, Key: "k2-99"})
	if err != nil || !got.Found {
		t.Fatalf("a document of the source's ops above its commit: %v, %v", got, err)
	}
}

// TestSidecarEngineMissingAtStart: recoverd --engine waits for an engine
// socket that is not there yet, within --retry-budget: started before
// shardd it serves once shardd is up; with no engine at all it fails,
// saying so.
func TestSidecarEngineMissingAtStart(t *testing.T) {
	sockDir, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	cfg := defaultConfig()
	cfg.Data, cfg.NodeID, cfg.Engine, cfg.RetryBudget = t.TempDir(), "n1", "unix://"+filepath.Join(sockDir, "engine.sock"), 300*time.Millisecond
	cfg.Insecure = true
	cfg.GRPCAddr, cfg.PeerAddr, cfg.HTTPAddr = testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	sec, err := loadSecurity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = serve(context.Background(), cfg, sec, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "--engine: no engine answered") {
		t.Fatalf("serve with no engine: %v", err)
	}

	// Started first, it serves once the engine is up.
	data := t.TempDir()
	cfg.Data, cfg.RetryBudget = data, time.Minute
	sock := filepath.Join(sockDir, "engine.sock")
	started := make(chan *launch.Shardd, 1)
	go func() {
		time.Sleep(500 * time.Millisecond)
		sd, err := launch.StartShardd(context.Background(), launch.SharddOptions{Bin: testutil.Binary(t, "shardd"), Name: "n1", Data: data,
			Socket: sock, LogPath: filepath.Join(t.TempDir(), "shardd.log")})
		if err != nil {
			t.Error(err)
		}
		started <- sd
	}()
	defer func() {
		if sd := <-started; sd != nil {
			sd.Stop(syscall.SIGTERM, 20*time.Second)
		}
	}()
	startServe(t, cfg, &syncBuf{})
}
