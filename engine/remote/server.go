package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
)

// MaxMessageBytes bounds one message on the socket: a batch of ops (Apply,
// AppendOps, ReadOps) or a commit's file list. No file byte crosses it.
const MaxMessageBytes = 64 << 20

// Server serves an engine.Engine as EngineService. It holds the sessions
// of its clients (session.go); the engine itself is the caller's, which
// closes it after Stop.
type Server struct {
	pb.UnimplementedEngineServiceServer
	eng engine.Engine
	log *slog.Logger

	mu       sync.Mutex
	stopped  bool
	done     chan struct{}
	sessions map[string]*session
	grpc     *grpc.Server
}

// NewServer returns a server of e.
func NewServer(e engine.Engine, log *slog.Logger) *Server {
	return &Server{eng: e, log: log, done: make(chan struct{}), sessions: map[string]*session{}}
}

// Register registers EngineService on g, for a caller that serves it
// beside other services; Serve is the usual way.
func (srv *Server) Register(g grpc.ServiceRegistrar) { pb.RegisterEngineServiceServer(g, srv) }

// Serve serves EngineService on lis until Stop; it returns nil after Stop.
func (srv *Server) Serve(lis net.Listener) error {
	g := grpc.NewServer(grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes))
	srv.Register(g)
	srv.mu.Lock()
	if srv.stopped {
		srv.mu.Unlock()
		lis.Close()
		return nil
	}
	srv.grpc = g
	srv.mu.Unlock()
	if err := g.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("engine socket: %w", err)
	}
	return nil
}

// Stop ends every session (their pins released, stagings suspended), lets
// the calls under way finish within ctx, and stops serving.
func (srv *Server) Stop(ctx context.Context) {
	srv.mu.Lock()
	if !srv.stopped {
		srv.stopped = true
		close(srv.done)
	}
	sessions := srv.sessions
	srv.sessions = map[string]*session{}
	g := srv.grpc
	srv.mu.Unlock()
	for _, s := range sessions {
		s.end(srv.log)
	}
	if g == nil {
		return
	}
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		g.Stop()
		<-stopped
	}
}

// Held counts the sessions open and the pins and stagings they hold: what
// a client that is gone would leak if its session did not end.
func (srv *Server) Held() (sessions, pins, stagings int) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for _, s := range srv.sessions {
		s.mu.Lock()
		pins += len(s.pins)
		stagings += len(s.stagings)
		s.mu.Unlock()
	}
	return len(srv.sessions), pins, stagings
}

// Session implements EngineService: the session lives as long as the
// stream.
func (srv *Server) Session(_ *pb.EngineSessionRequest, stream grpc.ServerStreamingServer[pb.EngineSessionEvent]) error {
	s := newSession()
	srv.mu.Lock()
	if srv.stopped {
		srv.mu.Unlock()
		return rpcerr.ToStatus(fmt.Errorf("%w: the engine is stopping", engine.ErrClosed))
	}
	srv.sessions[s.id] = s
	srv.mu.Unlock()
	defer func() {
		srv.mu.Lock()
		delete(srv.sessions, s.id)
		srv.mu.Unlock()
		s.end(srv.log)
	}()
	if err := stream.Send(&pb.EngineSessionEvent{Session: s.id}); err != nil {
		return err
	}
	select {
	case <-stream.Context().Done():
	case <-srv.done:
	}
	return nil
}

func (srv *Server) Version(context.Context, *pb.EngineVersionRequest) (*pb.EngineVersionResponse, error) {
	v := srv.eng.Version()
	return &pb.EngineVersionResponse{Writer: v.Writer, MaxFormat: int32(v.MaxFormat)}, nil
}

func (srv *Server) ListShards(ctx context.Context, _ *pb.ListEngineShardsRequest) (*pb.ListEngineShardsResponse, error) {
	list, err := srv.eng.Shards(ctx)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	out := &pb.ListEngineShardsResponse{}
	for _, s := range list {
		out.Shards = append(out.Shards, &pb.EngineShardStatus{Shard: shardID(s.ID), State: string(s.State), Reason: s.Reason, Since: pbconv.Time(s.Since)})
	}
	return out, nil
}

func (srv *Server) GetShard(ctx context.Context, req *pb.GetEngineShardRequest) (*pb.GetEngineShardResponse, error) {
	sess, err := srv.sessionOf(ctx)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	sh, err := srv.eng.Shard(ctx, shardIDFromPB(req.GetShard()))
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	h, err := add(sess, sess.shards, sh)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.GetEngineShardResponse{Handle: h}, nil
}

func (srv *Server) OpenTarget(ctx context.Context, req *pb.OpenEngineTargetRequest) (*pb.OpenEngineTargetResponse, error) {
	sess, err := srv.sessionOf(ctx)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	t, replaced, err := srv.eng.OpenTarget(ctx, shardIDFromPB(req.GetShard()))
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	h, err := add(sess, sess.shards, engine.Shard(t))
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	sess.mu.Lock()
	sess.targets[h] = true
	sess.mu.Unlock()
	return &pb.OpenEngineTargetResponse{Handle: h, Replaced: replaced}, nil
}

func (srv *Server) RemoveUncommitted(ctx context.Context, req *pb.RemoveUncommittedRequest) (*pb.RemoveUncommittedResponse, error) {
	if err := srv.eng.RemoveUncommitted(ctx, shardIDFromPB(req.GetShard())); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.RemoveUncommittedResponse{}, nil
}

func (srv *Server) SweepUncommitted(ctx context.Context, req *pb.SweepUncommittedRequest) (*pb.SweepUncommittedResponse, error) {
	keep := map[engine.ShardID]bool{}
	for _, id := range req.GetKeep() {
		keep[shardIDFromPB(id)] = true
	}
	removed, err := srv.eng.SweepUncommitted(ctx, keep)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	out := &pb.SweepUncommittedResponse{}
	for _, id := range removed {
		out.Removed = append(out.Removed, shardID(id))
	}
	return out, nil
}

func (srv *Server) RefuseWrites(ctx context.Context, req *pb.EngineWritesRequest) (*pb.EngineWritesResponse, error) {
	if err := srv.eng.RefuseWrites(ctx, shardIDFromPB(req.GetShard()), req.GetRecoveryId()); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.EngineWritesResponse{}, nil
}

func (srv *Server) ResumeWrites(ctx context.Context, req *pb.EngineWritesRequest) (*pb.EngineWritesResponse, error) {
	if err := srv.eng.ResumeWrites(ctx, shardIDFromPB(req.GetShard()), req.GetRecoveryId()); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.EngineWritesResponse{}, nil
}

// shard resolves a shard handle of the caller's session.
func (srv *Server) shard(ctx context.Context, h string) (*session, engine.Shard, error) {
	sess, err := srv.sessionOf(ctx)
	if err != nil {
		return nil, nil, err
	}
	sh, err := get(sess, sess.shards, h, engine.ErrClosed, "shard handle")
	return sess, sh, err
}

// target resolves a handle OpenTarget made.
func (srv *Server) target(ctx context.Context, h string) (engine.Target, error) {
	sess, sh, err := srv.shard(ctx, h)
	if err != nil {
		return nil, err
	}
	sess.mu.Lock()
	isTarget := sess.targets[h]
	sess.mu.Unlock()
	t, ok := sh.(engine.Target)
	if !ok || !isTarget {
		return nil, fmt.Errorf("%w: shard handle %q is not a target (OpenTarget makes one)", engine.ErrInvalidArgument, h)
	}
	return t, nil
}

// staging resolves a staging handle of the caller's session.
func (srv *Server) staging(ctx context.Context, h string) (*session, engine.Staging, error) {
	sess, err := srv.sessionOf(ctx)
	if err != nil {
		return nil, nil, err
	}
	sess.mu.Lock()
	finished := sess.finished[h]
	sess.mu.Unlock()
	if finished {
		return nil, nil, fmt.Errorf("%w: staging %q was published, abandoned or suspended", engine.ErrClosed, h)
	}
	st, err := get(sess, sess.stagings, h, engine.ErrNotFound, "staging")
	return sess, st, err
}

// Time is the server's clock, for the pins' TTLs.
var now = time.Now
