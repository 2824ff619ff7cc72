package recovery

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/transfer"
)

// Service implements pb.RecoveryServiceServer over a Manager.
type Service struct {
	pb.UnimplementedRecoveryServiceServer
	m *Manager
}

// NewService returns the RecoveryService of a manager.
func NewService(m *Manager) *Service { return &Service{m: m} }

func (s *Service) StartRecovery(ctx context.Context, req *pb.StartRecoveryRequest) (*pb.StartRecoveryResponse, error) {
	shard, err := pbconv.ShardIDFromPB(req.Shard)
	if err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "shard: %v", err)
	}
	if req.SourceAddress == "" {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "source_address is required (host:port of the source node's peer listener)")
	}
	if err := s.checkSource(ctx, shard, req.RecoveryId, req.SourceAddress); err != nil {
		return nil, err
	}
	sr := StartRequest{Shard: shard, Source: req.SourceAddress, ID: req.RecoveryId}
	if o := req.Options; o != nil {
		sr.UseSnapshots = o.UseSnapshots
		sr.DryRun = o.DryRun
		sr.AllowDataLoss = o.AllowDataLoss
	}
	if err := s.m.Precheck(ctx, sr); err != nil {
		return nil, rpcerr.StatusOrf(err, codes.FailedPrecondition, "%v", err)
	}
	r, err := s.m.Start(sr)
	switch {
	case errors.Is(err, ErrRunning):
		snap, _ := r.State()
		return nil, rpcerr.Statusf(err, "shard %s is already being recovered by %s (from %s); watch or cancel it", shard, snap.ID, snap.Source)
	case err != nil:
		return nil, rpcerr.StatusOrf(err, codes.FailedPrecondition, "%v", err)
	}
	if sr.DryRun {
		<-r.Done()
	}
	snap, _ := r.State()
	return &pb.StartRecoveryResponse{Recovery: ToPB(snap, true)}, nil
}

// checkSource refuses a source address that is not host:port
// (InvalidArgument) and a source that cannot be connected to now
// (Unavailable, with the dial error), so that neither is accepted and then
// reported failed once the retry budget has passed. A request for a
// recovery of the shard that already runs is not probed: Start answers it
// (the running one, or AlreadyExists).
func (s *Service) checkSource(ctx context.Context, shard engine.ShardID, id, addr string) error {
	if err := ValidateSourceAddress(addr); err != nil {
		return rpcerr.Statusf(ErrSourceAddress, "source_address: %v", err)
	}
	if _, running := s.m.ActiveStagings()[shard]; running {
		return nil
	}
	if err := ProbeSource(ctx, addr, SourceProbeTimeout); err != nil {
		return rpcerr.Statusf(ErrSourceUnreachable, "%v; nothing was started: check the source node is up and source_address is its peer listener (--peer-addr), then try again", err)
	}
	return nil
}

func (s *Service) get(id string) (*Recovery, error) {
	r, err := s.m.Get(id)
	if err != nil {
		return nil, rpcerr.Statusf(ErrNotFound, "no recovery %q on this node (finished ones are kept for a while, then forgotten)", id)
	}
	return r, nil
}

func (s *Service) GetRecovery(ctx context.Context, req *pb.GetRecoveryRequest) (*pb.GetRecoveryResponse, error) {
	r, err := s.get(req.Id)
	if err != nil {
		return nil, err
	}
	snap, _ := r.State()
	return &pb.GetRecoveryResponse{Recovery: ToPB(snap, true)}, nil
}

func (s *Service) ListRecoveries(ctx context.Context, req *pb.ListRecoveriesRequest) (*pb.ListRecoveriesResponse, error) {
	var shard *engine.ShardID
	if req.Shard != nil {
		id, err := pbconv.ShardIDFromPB(req.Shard)
		if err != nil {
			return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "shard: %v", err)
		}
		shard = &id
	}
	stages := map[pb.Stage]bool{}
	for _, st := range req.Stages {
		if !validStage(st) {
			return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "stages: %d is not a stage; use one of %s", int32(st), stageNames())
		}
		stages[st] = true
	}
	resp := &pb.ListRecoveriesResponse{}
	for _, r := range s.m.List() {
		snap, _ := r.State()
		if shard != nil && snap.Shard != *shard || req.ActiveOnly && snap.Stage.Finished() ||
			len(stages) > 0 && !stages[stageToPB(snap.Stage)] {
			continue
		}
		resp.Recoveries = append(resp.Recoveries, ToPB(snap, req.Detailed))
	}
	return resp, nil
}

func (s *Service) CancelRecovery(ctx context.Context, req *pb.CancelRecoveryRequest) (*pb.CancelRecoveryResponse, error) {
	if _, err := s.get(req.Id); err != nil {
		return nil, err
	}
	r, err := s.m.Cancel(ctx, req.Id, req.Reason)
	if err != nil {
		return nil, rpcerr.Errorf(codes.DeadlineExceeded, rpcerr.NoReason, "the recovery is stopping but did not finish in time: %v", err)
	}
	snap, _ := r.State()
	return &pb.CancelRecoveryResponse{Recovery: ToPB(snap, true)}, nil
}

func (s *Service) WatchRecovery(req *pb.WatchRecoveryRequest, stream pb.RecoveryService_WatchRecoveryServer) error {
	r, err := s.get(req.Id)
	if err != nil {
		return err
	}
	every := time.Second
	if req.MinInterval != nil {
		every = max(req.MinInterval.AsDuration(), 10*time.Millisecond)
	}
	for {
		snap, stageChanged := r.State()
		if err := stream.Send(&pb.WatchRecoveryResponse{Recovery: ToPB(snap, true)}); err != nil {
			return err
		}
		if snap.Stage.Finished() {
			return nil
		}
		select {
		case <-stageChanged:
		case <-time.After(every):
		case <-r.Done():
			if s, _ := r.State(); !s.Stage.Finished() { // paused
				return rpcerr.Errorf(codes.Unavailable, rpcerr.NoReason, "the node is stopping; recovery %s resumes when it starts again: watch it then", s.ID)
			}
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

func (s *Service) ExplainPlan(ctx context.Context, req *pb.ExplainPlanRequest) (*pb.ExplainPlanResponse, error) {
	shard, err := pbconv.ShardIDFromPB(req.Shard)
	if err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "shard: %v", err)
	}
	if req.SourceAddress == "" {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "source_address is required (host:port of the source node's peer listener)")
	}
	if err := s.checkSource(ctx, shard, "", req.SourceAddress); err != nil {
		return nil, err
	}
	sr := StartRequest{Shard: shard, Source: req.SourceAddress}
	if req.Options != nil {
		sr.UseSnapshots = req.Options.UseSnapshots
		sr.AllowDataLoss = req.Options.AllowDataLoss
	}
	p, err := s.m.Explain(ctx, sr)
	if err != nil {
		otherwise := codes.FailedPrecondition
		if retry.IsTransient(err) || errors.Is(err, transfer.ErrRetriesExhausted) {
			otherwise = codes.Unavailable // the source stopped answering while planning
		}
		return nil, rpcerr.StatusOrf(err, otherwise, "%v", err)
	}
	return &pb.ExplainPlanResponse{Plan: PlanToPB(p)}, nil
}

var stages = map[Stage]pb.Stage{
	StageQueued: pb.Stage_STAGE_QUEUED, StageInit: pb.Stage_STAGE_INIT, StagePlan: pb.Stage_STAGE_PLAN,
	StageFiles: pb.Stage_STAGE_FILES, StageVerify: pb.Stage_STAGE_VERIFY, StageFinalize: pb.Stage_STAGE_FINALIZE,
	StageOps: pb.Stage_STAGE_OPS, StageDone: pb.Stage_STAGE_DONE, StageFailed: pb.Stage_STAGE_FAILED,
	StageCancelled: pb.Stage_STAGE_CANCELLED,
}

func stageToPB(s Stage) pb.Stage { return stages[s] }

// validStage reports whether st is a stage a recovery can be in.
func validStage(st pb.Stage) bool {
	for _, v := range stages {
		if v == st {
			return true
		}
	}
	return false
}

// stageNames lists the stages' wire names, in order.
func stageNames() string {
	var names []string
	for v := range int32(len(pb.Stage_name)) {
		if validStage(pb.Stage(v)) {
			names = append(names, pb.Stage(v).String())
		}
	}
	return strings.Join(names, ", ")
}

var kinds = map[planner.Kind]pb.PlanKind{
	planner.KindOpsOnly: pb.PlanKind_PLAN_KIND_OPS_ONLY, planner.KindPeer: pb.PlanKind_PLAN_KIND_PEER,
	planner.KindSnapshot: pb.PlanKind_PLAN_KIND_SNAPSHOT, planner.KindHybrid: pb.PlanKind_PLAN_KIND_HYBRID,
	planner.KindRefused: pb.PlanKind_PLAN_KIND_REFUSED,
}

var sources = map[FileSource]pb.FileSource{FromPeer: pb.FileSource_FILE_SOURCE_PEER, FromSnapshot: pb.FileSource_FILE_SOURCE_SNAPSHOT, Reused: pb.FileSource_FILE_SOURCE_REUSED}

// PlanToPB converts a plan for the wire.
func PlanToPB(p planner.Plan) *pb.Plan {
	out := &pb.Plan{
		Kind: kinds[p.Kind], SnapshotId: p.SnapshotID, Commit: pbconv.CommitData(p.Commit),
		Reused: pbconv.Files(p.Reused), FromSnapshot: pbconv.Files(p.FromSnapshot), FromPeer: pbconv.Files(p.FromPeer),
		Ops: pbconv.Range(p.Ops), Reasons: p.Reasons,
		Estimate: &pb.PlanEstimate{BytesReused: p.BytesReused, BytesFromRepo: p.BytesFromRepo, BytesFromPeer: p.BytesFromPeer,
			OpsBytes: p.OpsBytes, BytesFromSource: p.BytesFromSource, Cost: p.Cost},
	}
	if p.Lease != nil {
		out.Lease = &pb.PlanLease{RetainingSeqno: int64(p.Lease.RetainingSeqNo), ProtectedBy: p.Lease.ProtectedBy}
	}
	if p.Fallback != nil {
		out.Fallback = PlanToPB(*p.Fallback)
	}
	return out
}

func countsToPB(c Counts) *pb.Counts {
	return &pb.Counts{Files: c.Files, Bytes: c.Bytes, RecoveredFiles: c.RecoveredFiles, RecoveredBytes: c.RecoveredBytes}
}

// ToPB converts a recovery's state for the wire; files are included when
// detailed.
func ToPB(s State, detailed bool) *pb.Recovery {
	useSnap := s.UseSnapshots
	out := &pb.Recovery{
		Id: s.ID, Shard: pbconv.ShardID(s.Shard), SourceAddress: s.Source, TargetNode: s.Target, Stage: stageToPB(s.Stage),
		Options: &pb.RecoveryOptions{UseSnapshots: &useSnap, DryRun: s.DryRun, AllowDataLoss: s.AllowDataLoss},
		Totals: &pb.RecoveryTotals{Total: countsToPB(s.Totals.Total), Reused: countsToPB(s.Totals.Reused),
			FromPeer: countsToPB(s.Totals.FromPeer), FromSnapshot: countsToPB(s.Totals.FromSnapshot)},
		Ops:          &pb.OpsProgress{Total: s.OpsTotal, Replayed: s.OpsReplayed},
		ThrottleWait: durationpb.New(s.ThrottleWait), Error: s.Error, StartTime: pbconv.Time(s.Start),
		Resumes: s.Resumes, Replans: int32(s.Replans), Restarts: int32(s.Restarts),
		RepositoryRequests: pbconv.RepositoryRequests(s.S3Requests),
	}
	if !s.End.IsZero() {
		out.EndTime = pbconv.Time(s.End)
	}
	if s.Plan != nil {
		out.Plan = PlanToPB(*s.Plan)
	}
	if detailed {
		for _, f := range s.Files {
			out.Files = append(out.Files, &pb.FileProgress{Name: f.Name, Length: f.Length, RecoveredBytes: f.Recovered, Source: sources[f.Source], Done: f.Done})
		}
	}
	for _, st := range s.Stages {
		t := &pb.StageTiming{Stage: stageToPB(st.Stage), StartTime: pbconv.Time(st.Start)}
		if !st.End.IsZero() {
			t.EndTime = pbconv.Time(st.End)
		}
		out.Stages = append(out.Stages, t)
	}
	for _, f := range s.Fallbacks {
		out.Fallbacks = append(out.Fallbacks, &pb.FallbackEvent{Time: pbconv.Time(f.Time), Cause: f.Cause, FromKind: kinds[f.From], ToKind: kinds[f.To]})
	}
	if c := s.Result; c != nil {
		out.Result = &pb.ResultCheck{SourceDigest: c.SourceDigest, TargetDigest: c.TargetDigest, SourceHistoryUuid: c.SourceHistoryUUID,
			TargetHistoryUuid: c.TargetHistoryUUID, SourceLocalCheckpoint: c.SourceCheckpoint, TargetLocalCheckpoint: c.TargetCheckpoint,
			Match: c.Match, Detail: c.Detail, Method: string(c.Method)}
	}
	return out
}
