package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/recoverd/recoverd/api/pbconv"
	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// shards holds the shards open on this node: the peer server reads them as
// a source, recoveries write them as a target, ShardService runs the
// reference engine on them.
//
// A shard that does not open is kept out of the way by what its error
// proves. ErrCorrupt (a checksum or format failure) is reported corrupt
// and moved aside only by a recovery onto this node (OpenTarget). Any
// other error (a read error, too many open files, its lock held) proves
// nothing about the data: the shard stays where it is, is reported
// unavailable, and is opened again on its next access.
type shards struct {
	dataDir string
	opts    shardstore.Options
	log     *slog.Logger

	mu   sync.Mutex
	open map[shardstore.ShardID]*shardstore.Shard
	// failed holds the shards on disk whose last open failed.
	failed map[shardstore.ShardID]openFailure
}

// openFailure is the last failed open of a shard.
type openFailure struct {
	err     error
	corrupt bool
	since   time.Time
}

func newShards(dataDir string, opts shardstore.Options, log *slog.Logger) *shards {
	return &shards{dataDir: dataDir, opts: opts, log: log,
		open: map[shardstore.ShardID]*shardstore.Shard{}, failed: map[shardstore.ShardID]openFailure{}}
}

// fdReserve is how many file descriptors openAll leaves free for the node
// itself (listeners, connections, recoveries), so that a node whose shards
// would take every descriptor still starts, answers and reports the
// shards it could not open.
const fdReserve = 64

// openAll opens every shard on disk: opening cleans what a crash left
// (staging of interrupted recoveries, temp files, unreferenced files).
func (r *shards) openAll() error {
	ids, err := shardstore.List(r.dataDir)
	if err != nil {
		return err
	}
	release := reserveFDs(fdReserve)
	defer release()
	var unavailable, corrupt int
	for _, id := range ids {
		if _, err := r.Shard(id); err != nil {
			if errors.Is(err, shardstore.ErrCorrupt) {
				corrupt++
			} else {
				unavailable++
			}
		}
	}
	if unavailable+corrupt > 0 {
		r.log.Warn("some shards did not open", "shards", len(ids), "unavailable", unavailable, "corrupt", corrupt)
	}
	return nil
}

// reserveFDs holds up to n descriptors open until release is called.
func reserveFDs(n int) (release func()) {
	var held []*os.File
	for range n {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		held = append(held, f)
	}
	return func() {
		for _, f := range held {
			f.Close()
		}
	}
}

// Shard returns an open shard, opening it if it exists on disk
// (transfer.ShardProvider). A shard a recovery is creating is none yet: the
// error wraps shardstore.ErrNotFound (peers are told the node does not
// hold it) and shardstore.ErrNoCommit.
func (r *shards) Shard(id shardstore.ShardID) (*shardstore.Shard, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.openLocked(id, false, false)
	if err == nil && !s.Committed() {
		return nil, errRecovering(id)
	}
	return s, err
}

func errRecovering(id shardstore.ShardID) error {
	return fmt.Errorf("%w: %w: shard %s is being created by a recovery onto this node and exists once it publishes",
		shardstore.ErrNotFound, shardstore.ErrNoCommit, id)
}

// openLocked opens a shard; create makes a missing one, with its first
// commit unless uncommitted (a recovery's target).
func (r *shards) openLocked(id shardstore.ShardID, create, uncommitted bool) (*shardstore.Shard, error) {
	if s, ok := r.open[id]; ok {
		return s, nil
	}
	opts := r.opts
	opts.Create, opts.Uncommitted = create, uncommitted
	s, err := shardstore.Open(r.dataDir, id, opts)
	if err != nil {
		r.noteFailureLocked(id, err)
		return nil, err
	}
	if f, ok := r.failed[id]; ok {
		r.log.Info("shard opened", "shard", id.String(), "was", f.state(), "since", f.since)
		delete(r.failed, id)
	}
	r.open[id] = s
	return s, nil
}

// noteFailureLocked records a failed open and logs it when the shard's
// state changes.
func (r *shards) noteFailureLocked(id shardstore.ShardID, err error) {
	if errors.Is(err, shardstore.ErrNotFound) || errors.Is(err, shardstore.ErrInvalidName) {
		delete(r.failed, id)
		return
	}
	f := openFailure{err: err, corrupt: errors.Is(err, shardstore.ErrCorrupt), since: time.Now()}
	prev, seen := r.failed[id]
	if seen && prev.corrupt == f.corrupt {
		f.since = prev.since
	}
	r.failed[id] = f
	switch {
	case seen && prev.corrupt == f.corrupt:
		r.log.Debug("shard still does not open", "shard", id.String(), "state", f.state(), "error", err)
	case f.corrupt:
		r.log.Error("shard is damaged; a recovery onto this node will move it aside and rebuild it", "shard", id.String(), "error", err)
	default:
		r.log.Warn("shard cannot be read now; it stays where it is, reported unavailable, and is opened again on its next access",
			"shard", id.String(), "error", err)
	}
}

func (f openFailure) state() string {
	if f.corrupt {
		return "corrupt"
	}
	return "unavailable"
}

// Create creates an empty shard with a new history.
func (r *shards) Create(id shardstore.ShardID, existOK bool) (*shardstore.Shard, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.open[id]; ok && !s.Committed() {
		return nil, errRecovering(id)
	}
	if _, ok := r.open[id]; ok || shardstore.Exists(r.dataDir, id) {
		if !existOK {
			return nil, fmt.Errorf("shard %s already exists", id)
		}
	}
	return r.openLocked(id, true, false)
}

// OpenTarget implements recovery.Targets. A shard that does not exist is
// opened without a commit: it becomes a shard of this node when the
// recovery publishes. A shard that does not open because its data is
// damaged (shardstore.ErrCorrupt) is moved to <data>/quarantine (never
// deleted) and an uncommitted one takes its place. Any other failure
// (shardstore.ErrUnavailable) leaves the shard where it is and fails the
// call: a recovery must not replace a copy that could not be read now.
func (r *shards) OpenTarget(id shardstore.ShardID) (*shardstore.Shard, string, error) {
	if err := id.Validate(); err != nil {
		return nil, "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.openLocked(id, true, true)
	if err == nil || !errors.Is(err, shardstore.ErrCorrupt) {
		return s, "", err
	}
	unreadable := err.Error()
	dst := filepath.Join(r.dataDir, "quarantine", id.Index+"."+strconv.Itoa(id.Shard)+"."+time.Now().UTC().Format("20060102T150405.000"))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, "", err
	}
	if err := os.Rename(shardstore.Dir(r.dataDir, id), dst); err != nil {
		return nil, "", fmt.Errorf("move damaged shard aside: %w", err)
	}
	r.log.Warn("moved a damaged shard aside", "shard", id.String(), "to", dst, "cause", unreadable)
	delete(r.failed, id)
	s, err = r.openLocked(id, true, true)
	return s, unreadable, err
}

// notOpen lists the shards on disk whose last open failed, and counts
// them by state, for ListShards and the metrics.
func (r *shards) notOpen() map[shardstore.ShardID]openFailure {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.failed)
}

// count is the number of shards in a state: open, unavailable or corrupt.
func (r *shards) count(state string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if state == "open" {
		return len(r.open)
	}
	n := 0
	for _, f := range r.failed {
		if f.state() == state {
			n++
		}
	}
	return n
}

// RemoveUncommitted implements recovery.Targets.
func (r *shards) RemoveUncommitted(id shardstore.ShardID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.open[id]
	if !ok || s.Committed() {
		return nil
	}
	delete(r.open, id)
	err := errors.Join(s.Close(), os.RemoveAll(s.Path()))
	r.log.Info("removed the shard a recovery created and did not publish", "shard", id.String(), "error", err)
	return err
}

// removeUncommitted deletes the shard directories without a commit that
// no open shard or running recovery (keep) owns: what recoveries that
// never published left when the node stopped. Nothing in them was a shard.
func (r *shards) removeUncommitted(keep map[shardstore.ShardID]string) error {
	root := filepath.Join(r.dataDir, "shards")
	indices, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ix := range indices {
		dirs, err := os.ReadDir(filepath.Join(root, ix.Name()))
		if err != nil || shardstore.ValidateName(ix.Name()) != nil {
			continue
		}
		for _, d := range dirs {
			n, err := strconv.Atoi(d.Name())
			id := shardstore.ShardID{Index: ix.Name(), Shard: n}
			if err != nil || !d.IsDir() || id.Validate() != nil || shardstore.Exists(r.dataDir, id) {
				continue
			}
			if _, open := r.open[id]; open {
				continue
			}
			if _, running := keep[id]; running {
				continue
			}
			if err := os.RemoveAll(shardstore.Dir(r.dataDir, id)); err != nil {
				return err
			}
			r.log.Info("removed a shard directory without a commit: a recovery created it and never published", "shard", id.String())
		}
	}
	return nil
}

// list returns the open shards; one a recovery is creating is none yet.
func (r *shards) list() []*shardstore.Shard {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*shardstore.Shard, rpcerr.NoReason, len(r.open))
	for _, s := range r.open {
		if s.Committed() {
			out = append(out, s)
		}
	}
	return out
}

func (r *shards) closeAll() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for id, s := range r.open {
		errs = append(errs, s.Close())
		delete(r.open, id)
	}
	return errors.Join(errs...)
}

// shardService implements ShardService: the reference engine over gRPC.
type shardService struct {
	pb.UnimplementedShardServiceServer
	shards *shards
	// recovering reports the shards a recovery is rebuilding on this node:
	// they take no primary writes, merges or promotions until it ends (its
	// publish would replace what they wrote). Replicated ops (Apply) are
	// accepted: the recovery's catch-up fetches them from the source anyway.
	recovering func() map[shardstore.ShardID]string
}

// writable refuses a write to a shard being recovered.
func (s *shardService) writable(m *pb.ShardId) (*shardstore.Shard, error) {
	sh, err := s.shard(m)
	if err != nil {
		return nil, err
	}
	if s.recovering != nil {
		if id, ok := s.recovering()[sh.ID()]; ok {
			return nil, rpcerr.Errorf(codes.FailedPrecondition, pb.ErrorReason_RECOVERY_RUNNING,
				"shard %s is being recovered by %s; write to it once the recovery is done (or cancel it)", sh.ID(), id)
		}
	}
	return sh, nil
}

func (s *shardService) shard(m *pb.ShardId) (*shardstore.Shard, error) {
	id, err := pbconv.ShardIDFromPB(m)
	if err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "shard: %v", err)
	}
	sh, err := s.shards.Shard(id)
	if errors.Is(err, shardstore.ErrNoCommit) && s.recovering != nil {
		if rid, ok := s.recovering()[id]; ok {
			return nil, rpcerr.Errorf(codes.FailedPrecondition, pb.ErrorReason_RECOVERY_RUNNING,
				"shard %s is being created by recovery %s onto this node; it exists once the recovery publishes (or cancel it)", id, rid)
		}
	}
	if err != nil {
		return nil, shardErr(id, err)
	}
	return sh, nil
}

// shardErr answers a shard lookup that failed: the code and reason are
// the status table's (rpcerr), the message says what it means on this
// node.
func shardErr(id shardstore.ShardID, err error) error {
	msg := fmt.Sprintf("shard %s: %v", id, err)
	switch {
	case errors.Is(err, shardstore.ErrNoCommit):
		msg = fmt.Sprintf("shard %s is being created by a recovery onto this node; it exists once the recovery publishes", id)
	case errors.Is(err, shardstore.ErrNotFound):
		msg = fmt.Sprintf("shard %s does not exist on this node", id)
	case errors.Is(err, shardstore.ErrInvalidName):
		msg = err.Error()
	case errors.Is(err, shardstore.ErrClosed):
		msg = fmt.Sprintf("shard %s is closed (the node is stopping)", id)
	case errors.Is(err, shardstore.ErrUnavailable):
		msg = fmt.Sprintf("shard %s cannot be read now; it stays in place and is opened again on the next request: %v", id, err)
	case errors.Is(err, shardstore.ErrCorrupt):
		msg = fmt.Sprintf("shard %s is damaged; a recovery onto this node moves it aside and rebuilds it: %v", id, err)
	}
	return rpcerr.Statusf(err, "%s", msg)
}

func (s *shardService) CreateShard(ctx context.Context, req *pb.CreateShardRequest) (*pb.CreateShardResponse, error) {
	id, err := pbconv.ShardIDFromPB(req.Shard)
	if err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "shard: %v", err)
	}
	sh, err := s.shards.Create(id, req.ExistOk)
	if err != nil {
		if shardstore.Exists(s.shards.dataDir, id) && !req.ExistOk {
			return nil, rpcerr.Errorf(codes.AlreadyExists, rpcerr.NoReason, "shard %s already exists (set exist_ok to accept it)", id)
		}
		return nil, shardErr(id, err)
	}
	return &pb.CreateShardResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}

// ListShards lists the open shards and, with their state and reason, the
// shards on disk whose last open failed.
func (s *shardService) ListShards(ctx context.Context, req *pb.ListShardsRequest) (*pb.ListShardsResponse, error) {
	resp := &pb.ListShardsResponse{}
	for _, sh := range s.shards.list() {
		resp.Shards = append(resp.Shards, pbconv.ShardStats(sh.Stats()))
	}
	for id, f := range s.shards.notOpen() {
		st := pb.ShardState_SHARD_STATE_UNAVAILABLE
		if f.corrupt {
			st = pb.ShardState_SHARD_STATE_CORRUPT
		}
		resp.Shards = append(resp.Shards, &pb.ShardStats{Shard: pbconv.ShardID(id), State: st, StateReason: f.err.Error()})
	}
	return resp, nil
}

func (s *shardService) Index(ctx context.Context, req *pb.IndexRequest) (*pb.IndexResponse, error) {
	sh, err := s.writable(req.Shard)
	if err != nil {
		return nil, err
	}
	docs := make([]shardstore.Doc, len(req.Docs))
	for i, d := range req.Docs {
		docs[i] = shardstore.Doc{Key: d.Key, Value: d.Value}
	}
	ops, err := sh.IndexBatch(ctx, docs)
	if err != nil {
		return nil, writeErr(err)
	}
	return &pb.IndexResponse{Ops: pbconv.Ops(ops)}, nil
}

// writeErr answers a write that failed: by the status table (rpcerr),
// and InvalidArgument for what it does not know (the write itself was
// refused).
func writeErr(err error) error {
	return rpcerr.StatusOrf(err, codes.InvalidArgument, "%v", err)
}

func (s *shardService) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	sh, err := s.writable(req.Shard)
	if err != nil {
		return nil, err
	}
	resp := &pb.DeleteResponse{}
	for _, k := range req.Keys {
		op, err := sh.Delete(ctx, k)
		if err != nil {
			return nil, writeErr(err)
		}
		resp.Ops = append(resp.Ops, pbconv.Op(op))
	}
	return resp, nil
}

func (s *shardService) Apply(ctx context.Context, req *pb.ApplyRequest) (*pb.ApplyResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	ops, err := pbconv.OpsFromPB(req.Ops)
	if err != nil {
		return nil, rpcerr.Errorf(codes.InvalidArgument, rpcerr.NoReason, "ops: %v", err)
	}
	if err := sh.Apply(ctx, ops); err != nil {
		return nil, writeErr(err)
	}
	return &pb.ApplyResponse{Seqno: pbconv.Stats(sh.Stats().Seq)}, nil
}

func (s *shardService) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	v, seq, ok, err := sh.Get(req.Key)
	if err != nil {
		return nil, rpcerr.Errorf(codes.Internal, rpcerr.NoReason, "%v", err)
	}
	return &pb.GetResponse{Found: ok, Value: v, Seqno: int64(seq)}, nil
}

func (s *shardService) Flush(ctx context.Context, req *pb.FlushRequest) (*pb.FlushResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	if req.GlobalCheckpoint != nil {
		sh.SetGlobalCheckpoint(seqno.SeqNo(*req.GlobalCheckpoint))
	}
	if err := sh.Flush(); err != nil {
		return nil, rpcerr.Errorf(codes.Internal, rpcerr.NoReason, "flush: %v", err)
	}
	return &pb.FlushResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}

func (s *shardService) Merge(ctx context.Context, req *pb.MergeRequest) (*pb.MergeResponse, error) {
	sh, err := s.writable(req.Shard)
	if err != nil {
		return nil, err
	}
	if err := sh.Merge(); err != nil {
		return nil, rpcerr.Errorf(codes.Internal, rpcerr.NoReason, "merge: %v", err)
	}
	return &pb.MergeResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}

func (s *shardService) Stats(ctx context.Context, req *pb.StatsRequest) (*pb.StatsResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	return &pb.StatsResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}

func (s *shardService) Digest(ctx context.Context, req *pb.DigestRequest) (*pb.DigestResponse, error) {
	sh, err := s.shard(req.Shard)
	if err != nil {
		return nil, err
	}
	st := sh.Stats()
	d, err := sh.Digest(ctx)
	if err != nil {
		return nil, rpcerr.Errorf(codes.Internal, rpcerr.NoReason, "digest: %v", err)
	}
	return &pb.DigestResponse{Digest: d, HistoryUuid: st.HistoryUUID, Seqno: pbconv.Stats(st.Seq)}, nil
}

func (s *shardService) Promote(ctx context.Context, req *pb.PromoteRequest) (*pb.PromoteResponse, error) {
	sh, err := s.writable(req.Shard)
	if err != nil {
		return nil, err
	}
	if err := sh.Promote(); err != nil {
		return nil, rpcerr.Errorf(codes.Internal, rpcerr.NoReason, "promote: %v", err)
	}
	return &pb.PromoteResponse{Stats: pbconv.ShardStats(sh.Stats())}, nil
}
