package remote

import (
	"context"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
)

// The calls on a staging: EngineService's Staging part. A staging belongs
// to the session that started it; the session's end suspends it.

func (srv *Server) StartStaging(ctx context.Context, req *pb.StartStagingRequest) (*pb.StartStagingResponse, error) {
	t, err := srv.target(ctx, req.GetHandle())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	sess, err := srv.sessionOf(ctx)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	st, err := t.StartStaging(ctx, req.GetRecoveryId())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	h, err := add(sess, sess.stagings, st)
	if err != nil {
		st.Suspend(context.WithoutCancel(ctx))
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.StartStagingResponse{Staging: h, Dir: st.Dir()}, nil
}

func (srv *Server) AppendOps(ctx context.Context, req *pb.AppendOpsRequest) (*pb.StagingResponse, error) {
	_, st, err := srv.staging(ctx, req.GetStaging())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	if err := st.AppendOps(ctx, opsFromPB(req.GetOps())); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.StagingResponse{}, nil
}

func (srv *Server) DiscardOps(ctx context.Context, req *pb.StagingRequest) (*pb.StagingResponse, error) {
	_, st, err := srv.staging(ctx, req.GetStaging())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	if err := st.DiscardOps(ctx); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.StagingResponse{}, nil
}

// Publish runs to its end once started, whether or not the caller is
// still there: a publish the caller gave up on is at its old commit or
// its new one, never between, and the caller learns which from the
// copy's generation.
func (srv *Server) Publish(ctx context.Context, req *pb.PublishRequest) (*pb.StagingResponse, error) {
	sess, st, err := srv.staging(ctx, req.GetStaging())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	if err := st.Publish(context.WithoutCancel(ctx), filesFromPB(req.GetFiles()), commitFromPB(req.GetCommit())); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	sess.finish(req.GetStaging())
	return &pb.StagingResponse{}, nil
}

func (srv *Server) Abandon(ctx context.Context, req *pb.StagingRequest) (*pb.StagingResponse, error) {
	sess, st, err := srv.staging(ctx, req.GetStaging())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	sess.finish(req.GetStaging())
	if err := st.Abandon(ctx); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.StagingResponse{}, nil
}

func (srv *Server) Suspend(ctx context.Context, req *pb.StagingRequest) (*pb.StagingResponse, error) {
	sess, st, err := srv.staging(ctx, req.GetStaging())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	sess.finish(req.GetStaging())
	if err := st.Suspend(ctx); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &pb.StagingResponse{}, nil
}
