package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/api/rpcerr"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

var (
	// ErrRunning is returned by Start while another recovery of the same
	// shard runs on this node. The sentinels the status table names are
	// defined in api/rpcerr, as this one (rpcerr.ErrRecoveryRunning).
	ErrRunning = rpcerr.ErrRecoveryRunning
	// ErrNotFound is returned for an unknown recovery id.
	ErrNotFound = rpcerr.ErrRecoveryNotFound
	// ErrCancelled is the cause of a recovery cancelled by a caller.
	ErrCancelled = rpcerr.ErrRecoveryCancelled
	// errNodeStopping is the cause of a recovery stopped by Close: it
	// pauses, to resume when the node starts again.
	errNodeStopping = errors.New("recovery: the node is stopping; the recovery resumes when it starts again")
)

// Config configures a node's recoveries.
type Config struct {
	// NodeID names this node in leases, pins and logs.
	NodeID string
	// Engine is the node's storage engine (package engine): recoveries
	// open their targets in it, stage into it and publish through it, and
	// it refuses primary writes to a shard while a recovery replaces it
	// (Engine.RefuseWrites from Start until the recovery ends). Planning
	// alone (a dry run, Explain, Precheck) asks it only Engine.Shard and
	// changes nothing.
	Engine engine.Engine
	// Dial returns a PeerService client for a source address; the daemon
	// keeps one connection per address.
	Dial func(ctx context.Context, addr string) (pb.PeerServiceClient, error)
	// Repo is the snapshot repository; nil disables snapshots.
	Repo snapshot.Repository
	// UseSnapshots is the default of StartRequest.UseSnapshots.
	UseSnapshots bool
	// Settings weigh plan costs (UseSnapshots is set per recovery).
	Settings planner.Settings
	// Throttle is the node's bandwidth budget shared by peer and snapshot
	// bytes; nil is unlimited.
	Throttle *transfer.Throttle
	// MaxConcurrent recoveries run at once (default 2); others queue.
	MaxConcurrent int
	// MaxSnapshotDownloads bounds the snapshot files downloading at once on
	// the node, across recoveries (default 4).
	MaxSnapshotDownloads int
	// Fetch tunes peer file transfers (parallel files, chunk size,
	// compression, idle timeout, retry budget). Callbacks are set per
	// recovery.
	Fetch transfer.FetchOptions
	// Ops tunes op streams.
	Ops transfer.OpsOptions
	// NewDownloader returns a downloader with the node's settings; nil uses
	// snapshot's defaults. Callbacks are set per recovery.
	NewDownloader func() *snapshot.Downloader
	// PinTTL is asked of sources for commit pins (default 2 minutes).
	PinTTL time.Duration
	// DataDir is the node's data directory: a plan is refused, before any
	// byte moves, when what it stages plus DiskMargin is more than the
	// free space of its file system. Empty skips the check.
	DataDir    string
	DiskMargin DiskMargin
	// PinWait bounds how long a recovery waits, queued and without a node
	// slot, for a source at its limit of outgoing recoveries to grant a
	// pin (default 10 minutes). Only the time spent on the source counts
	// (asking, refused, backing off), not the time queued for a slot.
	PinWait time.Duration
	// MaxReplans bounds re-planning after a lost lease or compacted ops
	// (default 3).
	MaxReplans int
	// KeepFinished is how long finished recoveries stay readable
	// (default 1 hour).
	KeepFinished time.Duration
	// VerifyDigest says which digests the end-of-recovery check compares
	// with the source (check.go). The default, DigestAuto, is the streamed
	// check: the BLAKE3 sum of each file moved from the peer and the digest of
	// the ops moved, both computed on both nodes as they streamed, reading
	// nothing again. DigestAlways compares content digests, which read the
	// whole shard once on both nodes (cached until the content changes);
	// DigestNever compares history UUID and seqnos, the files standing
	// verified by their checksums and the ops by seqno.
	VerifyDigest DigestCheck
	// StateDir holds the journal of recoveries (journal.go): running ones
	// resume after a restart, finished ones stay readable for
	// KeepFinished; empty disables it.
	StateDir string
	Metrics  *Metrics
	Logger   *slog.Logger
}

func (c *Config) defaults() {
	if c.NodeID == "" {
		c.NodeID, _ = os.Hostname()
		if engine.ValidateName(c.NodeID) != nil {
			c.NodeID = "node"
		}
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 2
	}
	if c.MaxSnapshotDownloads <= 0 {
		c.MaxSnapshotDownloads = 4
	}
	if c.PinTTL <= 0 {
		c.PinTTL = 2 * time.Minute
	}
	if c.PinWait <= 0 {
		c.PinWait = 10 * time.Minute
	}
	if c.MaxReplans <= 0 {
		c.MaxReplans = 3
	}
	if c.KeepFinished <= 0 {
		c.KeepFinished = time.Hour
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.VerifyDigest == "" {
		c.VerifyDigest = DigestAuto
	}
	if c.NewDownloader == nil {
		c.NewDownloader = func() *snapshot.Downloader { return &snapshot.Downloader{} }
	}
}

// DigestCheck is when a recovery's final check compares content digests.
type DigestCheck string

const (
	DigestAuto   DigestCheck = "auto" // the streamed check (content digests when it cannot be made, but after a snapshot plan)
	DigestAlways DigestCheck = "always"
	DigestNever  DigestCheck = "never"
)

// ParseDigestCheck reads auto, always or never (true and false mean always
// and never).
func ParseDigestCheck(s string) (DigestCheck, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return DigestAuto, nil
	case "always", "true":
		return DigestAlways, nil
	case "never", "false":
		return DigestNever, nil
	}
	return "", fmt.Errorf("digest check %q: want auto, always or never", s)
}

// Manager runs the recoveries of one node.
type Manager struct {
	cfg       Config
	slots     chan struct{} // MaxConcurrent
	downloads chan struct{} // MaxSnapshotDownloads
	ctx       context.Context
	stop      context.CancelCauseFunc
	wg        sync.WaitGroup

	mu     sync.Mutex
	all    map[string]*Recovery
	active map[engine.ShardID]*Recovery
}

// NewManager returns a manager; Close stops it.
func NewManager(cfg Config) *Manager {
	cfg.defaults()
	ctx, stop := context.WithCancelCause(context.Background())
	return &Manager{
		cfg: cfg, ctx: ctx, stop: stop,
		slots:     make(chan struct{}, cfg.MaxConcurrent),
		downloads: make(chan struct{}, cfg.MaxSnapshotDownloads),
		all:       map[string]*Recovery{},
		active:    map[engine.ShardID]*Recovery{},
	}
}

// StartRequest asks for one recovery.
type StartRequest struct {
	Shard  engine.ShardID
	Source string // the source node's peer address
	// ID names the recovery; empty picks one.
	ID string
	// UseSnapshots overrides Config.UseSnapshots when set.
	UseSnapshots *bool
	// DryRun plans without moving anything.
	DryRun bool
	// AllowDataLoss lets the plan overwrite a target that holds ops past
	// the source's max seqno (planner.Settings.AllowDataLoss).
	AllowDataLoss bool
}

// Start registers a recovery and runs it in the background. While another
// recovery of the shard runs it returns that one with ErrRunning (unless it
// has the same id and source: then it is simply returned).
func (m *Manager) Start(req StartRequest) (*Recovery, error) {
	if err := req.Shard.Validate(); err != nil {
		return nil, err
	}
	if req.Source == "" {
		return nil, errors.New("recovery: a source address is needed")
	}
	if req.ID == "" {
		req.ID = "r-" + time.Now().UTC().Format("20060102T150405") + "-" + uuid.NewString()[:8]
	}
	if err := checkNames(m.cfg.NodeID, req.ID); err != nil {
		return nil, err
	}
	useSnap := m.cfg.UseSnapshots
	if req.UseSnapshots != nil {
		useSnap = *req.UseSnapshots
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return nil, errors.New("recovery: the node is shutting down")
	}
	if cur, ok := m.active[req.Shard]; ok {
		s, _ := cur.State()
		if s.ID == req.ID && s.Source == req.Source {
			return cur, nil
		}
		return cur, fmt.Errorf("%w: %s (recovery %s from %s)", ErrRunning, req.Shard, s.ID, s.Source)
	}
	if old, ok := m.all[req.ID]; ok {
		s, _ := old.State()
		if !s.Stage.Finished() || s.Shard != req.Shard {
			return old, fmt.Errorf("%w: id %s is taken by a recovery of %s", ErrRunning, req.ID, s.Shard)
		}
	}
	now := time.Now()
	r := newRecovery(State{ID: req.ID, Shard: req.Shard, Source: req.Source, Target: m.cfg.NodeID,
		UseSnapshots: useSnap, DryRun: req.DryRun, AllowDataLoss: req.AllowDataLoss, Stage: StageQueued, Start: now,
		Stages: []StageTiming{{Stage: StageQueued, Start: now}}})
	if err := m.refuseWrites(req); err != nil {
		return nil, err
	}
	m.launch(r, req, useSnap)
	return r, nil
}

// engineCallTimeout bounds the node-wide engine calls the manager makes
// outside a recovery's own context (refusing and resuming writes,
// removing what an ended recovery created).
const engineCallTimeout = 30 * time.Second

// refuseWrites asks the engine to refuse primary writes to the shard req
// recovers, from now until the recovery ends (resumeWrites): its publish
// would drop them. A recovery the engine cannot refuse writes for is not
// accepted. Call with m.mu held, before launch.
func (m *Manager) refuseWrites(req StartRequest) error {
	ctx, cancel := context.WithTimeout(m.ctx, engineCallTimeout)
	defer cancel()
	if err := m.cfg.Engine.RefuseWrites(ctx, req.Shard, req.ID); err != nil {
		return fmt.Errorf("recovery: refuse writes to %s while recovery %s runs: %w", req.Shard, req.ID, err)
	}
	return nil
}

// resumeWrites lifts the refusal of recovery id on shard.
func (m *Manager) resumeWrites(shard engine.ShardID, id string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), engineCallTimeout)
	defer cancel()
	if err := m.cfg.Engine.ResumeWrites(ctx, shard, id); err != nil {
		log.Error("could not lift the write refusal of the ended recovery; the engine refuses writes to the shard until it restarts", "error", err)
	}
}

// launch journals a queued recovery, registers it and runs it in the
// background. Call with m.mu held, once the engine refuses writes to the
// shard (refuseWrites).
func (m *Manager) launch(r *Recovery, req StartRequest, useSnap bool) {
	ctx, cancel := context.WithCancelCause(m.ctx)
	r.cancel = cancel
	r.onStage = m.journal
	s0, _ := r.State()
	m.journal(s0)
	m.all[req.ID] = r
	m.active[req.Shard] = r
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.runInSlot(ctx, r, req, useSnap)
	}()
}

// Explain computes the plan a recovery would run now, without registering
// a recovery or changing anything on either node (the source's commit is
// pinned for the time of the planning).
func (m *Manager) Explain(ctx context.Context, req StartRequest) (planner.Plan, error) {
	if err := req.Shard.Validate(); err != nil {
		return planner.Plan{}, err
	}
	if req.Source == "" {
		return planner.Plan{}, errors.New("recovery: a source address is needed")
	}
	useSnap := m.cfg.UseSnapshots
	if req.UseSnapshots != nil {
		useSnap = *req.UseSnapshots
	}
	req.DryRun = true
	req.ID = "explain-" + uuid.NewString()[:8]
	r := newRecovery(State{ID: req.ID, Shard: req.Shard, Source: req.Source, Target: m.cfg.NodeID, DryRun: true, Start: time.Now()})
	if err := m.runAttempts(ctx, r, req, useSnap, m.cfg.Logger.With("explain", req.Shard.String())); err != nil {
		return planner.Plan{}, err
	}
	s, _ := r.State()
	if s.Plan == nil {
		return planner.Plan{}, errors.New("recovery: no plan was computed")
	}
	return *s.Plan, nil
}

// Get returns a recovery by id.
func (m *Manager) Get(id string) (*Recovery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.all[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return r, nil
}

// List returns the recoveries the node knows, newest first.
func (m *Manager) List() []*Recovery {
	m.mu.Lock()
	out := make([]*Recovery, 0, len(m.all))
	for _, r := range m.all {
		out = append(out, r)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b *Recovery) int {
		sa, _ := a.State()
		sb, _ := b.State()
		return sb.Start.Compare(sa.Start)
	})
	return out
}

// Cancel stops a recovery: no fallback runs, staging is removed. It returns
// once the recovery has stopped. Cancelling a finished one is not an error.
func (m *Manager) Cancel(ctx context.Context, id, reason string) (*Recovery, error) {
	r, err := m.Get(id)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		reason = "by request"
	}
	r.cancel(fmt.Errorf("%w: %s", ErrCancelled, reason))
	select {
	case <-r.done:
	case <-ctx.Done():
		return r, ctx.Err()
	}
	return r, nil
}

// ActiveStagings maps the shards being recovered to their recovery ids
// (their staging directories must not be cleaned).
func (m *Manager) ActiveStagings() map[engine.ShardID]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[engine.ShardID]string, len(m.active))
	for id, r := range m.active {
		s, _ := r.State()
		out[id] = s.ID
	}
	return out
}

// Close stops every recovery and waits for them: they pause, keeping
// their journal and what they staged (what they held on their sources is
// released), and resume when the node starts again (Open). Watchers are
// told the node is stopping.
func (m *Manager) Close() {
	m.stop(errNodeStopping)
	m.wg.Wait()
}

// stopping reports whether ctx ended because the node is stopping.
func stopping(ctx context.Context) bool { return errors.Is(context.Cause(ctx), errNodeStopping) }

// unregister gives a finished recovery's shard back: the engine takes
// writes again, and snapshots and other recoveries may take it.
func (m *Manager) unregister(r *Recovery, shard engine.ShardID, log *slog.Logger) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active[shard] == r {
		delete(m.active, shard)
		s, _ := r.State()
		m.resumeWrites(shard, s.ID, log)
	}
}

// pause journals a recovery stopped with the node, so that it resumes at
// the next start. It stays active until the process ends: nothing (a
// cleanup sweep, a write to the shard) may take what it will resume from.
func (m *Manager) pause(r *Recovery) {
	s, _ := r.State()
	m.journal(s)
}

// forgetAfter forgets a finished recovery, and removes its journal file,
// after d.
func (m *Manager) forgetAfter(r *Recovery, id string, d time.Duration) {
	time.AfterFunc(d, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.all[id] == r {
			delete(m.all, id)
			m.unjournal(id)
		}
	})
}
