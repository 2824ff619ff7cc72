package remote_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/engine/embedded/embeddedtest"
	"github.com/recoverd/recoverd/engine/enginetest"
	"github.com/recoverd/recoverd/engine/remote"
)

// TestWireBadInput: what no Go client sends but another might: calls
// without a session or with an unknown one, handles that name nothing or
// the wrong kind of copy, messages left empty, an op kind the wire does
// not know. Each is refused with the contract's error, and the engine
// serves on.
func TestWireBadInput(t *testing.T) {
	emb, err := embeddedtest.Open(t.TempDir(), enginetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	dir, err := os.MkdirTemp("", "eng")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	lis, err := remote.Listen(filepath.Join(dir, "engine.sock"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	srv := remote.NewServer(emb, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	defer func() { srv.Stop(ctx); <-done }()
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, "engine.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rpc := pb.NewEngineServiceClient(conn)
	want := func(what string, err, sentinel error) {
		t.Helper()
		if err := rpcerr.FromStatus(err); !errors.Is(err, sentinel) {
			t.Errorf("%s: %v, want %q", what, err, sentinel)
		}
	}

	_, err = rpc.GetShard(ctx, &pb.GetEngineShardRequest{Shard: &pb.ShardId{Index: "x"}})
	want("a call without a session", err, engine.ErrInvalidArgument)
	bogus := metadata.AppendToOutgoingContext(ctx, "recoverd-engine-session", "nobody")
	_, err = rpc.GetShard(bogus, &pb.GetEngineShardRequest{Shard: &pb.ShardId{Index: "x"}})
	want("a call in an unknown session", err, engine.ErrClosed)

	stream, err := rpc.Session(ctx, &pb.EngineSessionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	sctx := metadata.AppendToOutgoingContext(ctx, "recoverd-engine-session", ev.Session)

	_, err = rpc.GetShard(sctx, &pb.GetEngineShardRequest{})
	want("a shard left empty", err, engine.ErrInvalidName)
	_, err = rpc.GetShardInfo(sctx, &pb.GetEngineShardInfoRequest{Handle: "nothing"})
	want("an unknown shard handle", err, engine.ErrClosed)
	_, err = rpc.RenewPin(sctx, &pb.EnginePinIdRequest{PinId: "nothing"})
	want("an unknown pin", err, engine.ErrPinLost)
	_, err = rpc.DigestAt(sctx, &pb.EngineDigestRequest{Handle: "nothing", BasePinId: "nothing"})
	want("a digest on nothing", err, engine.ErrClosed)
	_, err = rpc.AppendOps(sctx, &pb.AppendOpsRequest{Staging: "nothing"})
	want("an unknown staging", err, engine.ErrNotFound)
	if _, err := rpc.ReleasePin(sctx, &pb.EnginePinIdRequest{PinId: "nothing"}); err != nil {
		t.Errorf("releasing an unknown pin: %v, want no error", err)
	}

	// A committed copy, through the wire.
	tgt, err := rpc.OpenTarget(sctx, &pb.OpenEngineTargetRequest{Shard: &pb.ShardId{Index: "docs"}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := rpc.StartStaging(sctx, &pb.StartStagingRequest{Handle: tgt.Handle, RecoveryId: "rec"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rpc.Publish(sctx, &pb.PublishRequest{Staging: st.Staging})
	want("a publish without commit data", err, engine.ErrInvalidArgument)
	v := emb.Version()
	if _, err := rpc.Publish(sctx, &pb.PublishRequest{Staging: st.Staging, Commit: &pb.CommitData{HistoryUuid: "h", MaxSeqno: -1,
		LocalCheckpoint: -1, GlobalCheckpoint: -1, PrimaryTerm: 1, WriterVersion: v.Writer, FormatVersion: int32(v.MaxFormat)}}); err != nil {
		t.Fatal(err)
	}
	_, err = rpc.AppendOps(sctx, &pb.AppendOpsRequest{Staging: st.Staging})
	want("a staging published", err, engine.ErrClosed)
	_, err = rpc.Apply(sctx, &pb.EngineApplyRequest{Handle: tgt.Handle, Ops: []*pb.Op{{Key: "k", Seqno: 0, PrimaryTerm: 1, Kind: 99}}})
	want("an op kind the wire does not know", err, engine.ErrInvalidArgument)
	_, err = rpc.Apply(sctx, &pb.EngineApplyRequest{Handle: tgt.Handle, Ops: []*pb.Op{nil}})
	want("an op left empty", err, engine.ErrInvalidArgument)
	sh, err := rpc.GetShard(sctx, &pb.GetEngineShardRequest{Shard: &pb.ShardId{Index: "docs"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rpc.Apply(sctx, &pb.EngineApplyRequest{Handle: sh.Handle, Ops: []*pb.Op{{Key: "k", Seqno: 0, PrimaryTerm: 1, Kind: pb.OpKind_OP_KIND_INDEX}}})
	want("a target call on a handle GetShard made", err, engine.ErrInvalidArgument)
	ops, err := rpc.ReadOps(sctx, &pb.EngineReadOpsRequest{Handle: sh.Handle, Range: &pb.SeqNoRange{From: 5, To: 2}, History: "h"})
	if err == nil {
		_, err = ops.Recv()
	}
	want("an inverted range", err, engine.ErrInvalidArgument)
	if in, err := rpc.GetShardInfo(sctx, &pb.GetEngineShardInfoRequest{Handle: sh.Handle}); err != nil || in.Info.Seqno.MaxSeqno != -1 {
		t.Fatalf("after the bad input: %v, %v", in, err)
	}
}
