package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// Scope says which copies the policy snapshots.
type Scope string

const (
	// ScopePrimaries snapshots the copies that act as their shard's
	// primary (an engine that does not tell counts every copy as one).
	ScopePrimaries Scope = "primaries"
	// ScopeAll snapshots every copy of the node.
	ScopeAll Scope = "all"
)

// PolicyConfig is the snapshot policy of a node (--snapshot-*).
type PolicyConfig struct {
	// Interval between two snapshots of a shard; 0 disables scheduled
	// snapshots (the lease still follows the snapshots others take).
	Interval time.Duration
	// Jitter moves each run by up to ±Jitter/2 of the interval, at
	// random, so that a fleet does not snapshot at the same second (0..1).
	Jitter float64
	// Keep is how many snapshots of a shard retention keeps, newest first
	// (0: no bound by count); MaxAge deletes snapshots older than it
	// (0: none), never the newest.
	Keep   int
	MaxAge time.Duration
	Scope  Scope
	// LeaseMaxOps and LeaseMaxBytes bound the snapshot retention lease:
	// it never retains more ops than this, nor more bytes by the copy's
	// mean op size (0: no bound of that kind; both 0: no lease).
	LeaseMaxOps   int64
	LeaseMaxBytes int64
	// DeletionDelay is how long retention's deleted blobs stay marked
	// before they are deleted (--deletion-delay).
	DeletionDelay time.Duration
	// NodeID holds the lease.
	NodeID string
	// Retry paces the attempts of a failed run (the project's policy,
	// internal/retry); once its budget is spent the shard waits for its
	// next scheduled run. Zero: one interval of budget.
	Retry  retry.Options
	Logger *slog.Logger
	// Rand returns a float in [0,1) (tests); nil: math/rand.
	Rand func() float64
}

// Validate checks the configuration.
func (c PolicyConfig) Validate() error {
	var errs []string
	if c.Interval < 0 {
		errs = append(errs, fmt.Sprintf("interval %v is negative", c.Interval))
	}
	if c.Jitter < 0 || c.Jitter > 1 {
		errs = append(errs, fmt.Sprintf("jitter %v is not between 0 and 1", c.Jitter))
	}
	if c.Keep < 0 || c.MaxAge < 0 {
		errs = append(errs, fmt.Sprintf("keep %d and max age %v must not be negative", c.Keep, c.MaxAge))
	}
	if c.Scope != ScopePrimaries && c.Scope != ScopeAll {
		errs = append(errs, fmt.Sprintf("scope %q is neither %s nor %s", c.Scope, ScopePrimaries, ScopeAll))
	}
	if c.LeaseMaxOps < 0 || c.LeaseMaxBytes < 0 {
		errs = append(errs, "lease bounds must not be negative")
	}
	if c.MaxAge > 0 && c.Interval > 0 && c.MaxAge < c.Interval {
		errs = append(errs, fmt.Sprintf("max age %v is shorter than the interval %v: retention would delete what recoveries need", c.MaxAge, c.Interval))
	}
	if len(errs) > 0 {
		return fmt.Errorf("lifecycle: snapshot policy: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Policy takes the snapshots of a node's shards on a schedule, applies
// retention after each one that succeeded, and holds each copy's snapshot
// retention lease (lease.go). Create it with NewPolicy, run it with Run.
type Policy struct {
	svc *Service
	cfg PolicyConfig
	log *slog.Logger

	mu     sync.Mutex
	shards map[shardstore.ShardID]*shardState
}

// shardState is what the policy knows of one shard.
type shardState struct {
	latest     *snapshot.Manifest // newest known snapshot; nil: none known
	discovered bool               // the repository was read for it
	next       time.Time
	running    bool
	retrier    *retry.Retrier // set while a failed run is retried
	failures   int            // failed runs in a row
	lastErr    string
	lastRun    time.Time
	lastResult string
	primary    bool
	// roleUnknown: the engine does not say whether the copy acts as
	// primary (a remote engine); the copy is snapshotted as a primary and
	// follows the repository's latest snapshot as a replica, so that its
	// lease follows another node's snapshots in either role.
	roleUnknown bool
	refreshed   time.Time // last read of the latest snapshot, for a replica

	lease        *seqno.RetentionLease
	leaseFor     string // snapshot id the lease was set for
	leaseBound   string // why the lease stops above the snapshot, if it does
	leaseRenewed time.Time
	leaseTTL     time.Duration
}

// NewPolicy returns the policy of the service's node; the service's
// CreateSnapshot then tells it of the snapshots it creates.
func NewPolicy(svc *Service, cfg PolicyConfig) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Retry == (retry.Options{}) {
		cfg.Retry = retry.Options{Initial: time.Second, Max: max(cfg.Interval/4, time.Second), MaxElapsed: max(cfg.Interval, time.Minute)}
	}
	p := &Policy{svc: svc, cfg: cfg, log: cfg.Logger, shards: map[shardstore.ShardID]*shardState{}}
	svc.mu.Lock()
	svc.policy = p
	svc.mu.Unlock()
	return p, nil
}

// Config is the policy's configuration.
func (p *Policy) Config() PolicyConfig { return p.cfg }

// delay is the time to the next run: the interval, moved by the jitter.
func (p *Policy) delay() time.Duration {
	return time.Duration(float64(p.cfg.Interval) * (1 + p.cfg.Jitter*(p.cfg.Rand()-0.5)))
}

// poll is how often Run looks at the shards.
func (p *Policy) poll() time.Duration {
	if p.cfg.Interval <= 0 {
		return time.Second
	}
	return min(max(p.cfg.Interval/8, 20*time.Millisecond), time.Second)
}

// Run runs the policy until ctx ends, then waits for the runs in flight.
func (p *Policy) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(p.poll())
	defer t.Stop()
	for {
		p.Tick(ctx, &wg)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// maxInFlight bounds the runs started at once (each waits for an upload
// slot of the service).
func (p *Policy) maxInFlight() int {
	if p.svc.slots != nil {
		return 2 * cap(p.svc.slots)
	}
	return 8
}

// Tick does what is due: it learns of new shards and forgets gone ones,
// keeps leases, and starts the runs whose time has come (in wg).
func (p *Policy) Tick(ctx context.Context, wg *sync.WaitGroup) {
	list, err := p.svc.cfg.Engine.Shards(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("snapshot policy: cannot list the node's shards", "error", err)
		}
		return
	}
	open := map[shardstore.ShardID]bool{}
	for _, s := range list {
		if s.State == engine.StateOpen {
			open[s.ID] = true
		}
	}
	p.mu.Lock()
	for id := range p.shards {
		if !open[id] && !p.shards[id].running {
			delete(p.shards, id)
		}
	}
	p.mu.Unlock()
	ids := make([]shardstore.ShardID, 0, len(open))
	for id := range open {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b shardstore.ShardID) int { return strings.Compare(a.String(), b.String()) })
	inFlight := 0
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		// The engine is asked only for a shard with something due (its
		// lease, or a job): an idle shard is not kept open by the policy.
		p.mu.Lock()
		st, ok := p.shards[id]
		if !ok {
			st = &shardState{primary: true}
			p.shards[id] = st
		}
		now := time.Now()
		leaseDue := p.leaseDueLocked(st)
		jobDue := p.cfg.Interval > 0 && !now.Before(st.next)
		follows := (p.cfg.Scope == ScopePrimaries && !st.primary) || st.roleUnknown
		followDue := follows && now.Sub(st.refreshed) >= followEvery(st.leaseTTL)
		discovered := st.discovered
		if st.running {
			inFlight++
			jobDue, followDue = false, false
		}
		p.mu.Unlock()
		if !leaseDue && !jobDue && !followDue {
			continue
		}
		sh, err := p.svc.cfg.Engine.Shard(ctx, id)
		if err != nil {
			continue
		}
		primary, known := isPrimary(sh)
		p.mu.Lock()
		st.primary, st.roleUnknown = primary, !known
		p.mu.Unlock()
		// The lease asks only the engine: a repository that hangs
		// delays no renewal (the jobs below do the repository's I/O).
		if leaseDue {
			p.keepLease(ctx, id, sh, false)
		}
		var job func()
		switch {
		case jobDue && !discovered:
			// First sight (next is zero), or after a failed run that
			// could not read the repository: at the retry policy's pace.
			job = func() {
				if p.discover(ctx, id) {
					p.run(ctx, id, sh)
					return
				}
				p.idle(id)
			}
		case jobDue:
			job = func() { p.run(ctx, id, sh) }
		case followDue && (!primary || !known):
			// A replica takes no snapshot: it learns of its primary's
			// as often as its lease is renewed, and its lease follows.
			job = func() { p.refresh(ctx, id); p.idle(id) }
		}
		if job == nil || inFlight >= p.maxInFlight() {
			continue
		}
		p.mu.Lock()
		st.running = true
		p.mu.Unlock()
		inFlight++
		wg.Add(1)
		go func() {
			defer wg.Done()
			job()
		}()
	}
}

// idle ends a job that did not run a snapshot.
func (p *Policy) idle(id shardstore.ShardID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.shards[id]; ok {
		st.running = false
	}
}

// discover reads a shard's latest snapshot from the repository the first
// time the policy sees the shard, and says whether a run is due: the
// schedule goes on from that snapshot, so a restarted node does not
// snapshot every shard at once.
func (p *Policy) discover(ctx context.Context, id shardstore.ShardID) (due bool) {
	m, err := snapshot.Latest(ctx, p.svc.cfg.Repo, id)
	now := time.Now()
	spread := time.Duration(p.cfg.Rand() * p.cfg.Jitter * float64(p.cfg.Interval))
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.shards[id]
	switch {
	case err == nil:
		st.discovered = true
		if st.latest == nil || m.ID > st.latest.ID {
			st.latest = m
		}
		st.next = m.StartTime.Add(p.delay())
		if st.next.Before(now) {
			st.next = now.Add(spread)
		}
	case errors.Is(err, snapshot.ErrNotFound):
		st.discovered = true
		st.next = now.Add(spread)
	default:
		// Unreadable is not empty: the run is due now; it fails, is
		// counted, and is retried at the retry policy's pace, and the
		// next one reads the repository again.
		if ctx.Err() == nil {
			p.log.Warn("snapshot policy: cannot read the latest snapshot", "shard", id, "error", err)
		}
		return ctx.Err() == nil
	}
	return !now.Before(st.next)
}

// run is one scheduled run for a shard: a snapshot, then retention.
func (p *Policy) run(ctx context.Context, id shardstore.ShardID, sh engine.Shard) {
	start := time.Now()
	primary, known := isPrimary(sh)
	p.mu.Lock()
	st := p.shards[id]
	st.primary, st.roleUnknown = primary, !known
	p.mu.Unlock()
	if p.cfg.Scope == ScopePrimaries && !primary {
		// A replica follows the primary's snapshots: its lease is set
		// from the latest one.
		p.refresh(ctx, id)
		p.finish(id, start, "skipped", nil, nil)
		p.log.Debug("snapshot policy: replica skipped (primaries only)", "shard", id)
		return
	}
	c, err := p.svc.Create(ctx, id, TriggerPolicy)
	switch {
	case errors.Is(err, ErrRecoveryRunning):
		p.finish(id, start, "skipped", nil, nil)
		p.log.Info("snapshot policy: shard being recovered, skipped", "shard", id)
		return
	case err != nil:
		if ctx.Err() != nil {
			p.finish(id, start, "canceled", err, nil)
			return
		}
		p.finish(id, start, "failure", err, nil)
		return
	}
	p.finish(id, start, "success", nil, func(st *shardState) { st.latest = c.Manifest })
	p.log.Info("snapshot policy: snapshot taken", "shard", id, "snapshot", c.Manifest.ID, "checkpoint", c.Manifest.Commit.LocalCheckpoint,
		"uploaded_files", c.UploadedFiles, "uploaded_bytes", c.UploadedBytes, "reused_files", c.ReusedFiles, "reused_bytes", c.ReusedBytes, "took", c.Took)
	p.keepLease(ctx, id, sh, true)
	p.retain(ctx, id)
}

// finish records a run's result and schedules the next: after a failure
// the project's retry policy paces the next attempts until its budget is
// spent, then the shard waits for its next scheduled run.
func (p *Policy) finish(id shardstore.ShardID, start time.Time, result string, err error, update func(*shardState)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.shards[id]
	st.running = false
	st.lastRun, st.lastResult = start, result
	if update != nil {
		update(st)
	}
	now := time.Now()
	st.next = now.Add(p.delay())
	if result == "canceled" {
		return
	}
	p.svc.cfg.Metrics.run(result)
	if err == nil {
		st.failures, st.lastErr, st.retrier = 0, "", nil
		return
	}
	st.failures++
	st.lastErr = err.Error()
	if st.retrier == nil {
		st.retrier = retry.New(p.cfg.Retry)
	}
	pause, ok := st.retrier.Next()
	if ok && retry.IsTransient(err) || ok && Cause(err) == CauseRepository {
		st.next = now.Add(pause)
	} else {
		st.retrier = nil
	}
	p.log.Warn("snapshot policy: snapshot failed; nothing deleted", "shard", id, "cause", Cause(err), "failures_in_a_row", st.failures,
		"next_attempt", st.next.Sub(now).Round(time.Millisecond), "error", err)
}

// followEvery is how often a replica reads its shard's latest snapshot: as
// often as its snapshot retention lease is renewed (a third of the copy's
// lease TTL), 10s before the TTL is known.
func followEvery(leaseTTL time.Duration) time.Duration {
	if leaseTTL <= 0 {
		return 10 * time.Second
	}
	return leaseTTL / 3
}

// isPrimary asks an engine that tells (embedded: shardstore's role)
// whether the copy acts as primary; a copy of one that does not (known
// false) is taken for one.
func isPrimary(sh engine.Shard) (primary, known bool) {
	if r, ok := sh.(interface{ Primary() bool }); ok {
		return r.Primary(), true
	}
	return true, false
}

// refresh reads the shard's latest snapshot from the repository (one a
// primary on another node took); an error leaves what is known.
func (p *Policy) refresh(ctx context.Context, id shardstore.ShardID) {
	p.mu.Lock()
	if st, ok := p.shards[id]; ok {
		st.refreshed = time.Now()
	}
	p.mu.Unlock()
	m, err := snapshot.Latest(ctx, p.svc.cfg.Repo, id)
	if err != nil {
		if !errors.Is(err, snapshot.ErrNotFound) && ctx.Err() == nil {
			p.log.Debug("snapshot policy: cannot read the latest snapshot", "shard", id, "error", err)
		}
		return
	}
	p.landed(id, m)
}

// landed tells the policy of a snapshot created outside it.
func (p *Policy) landed(id shardstore.ShardID, m *snapshot.Manifest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.shards[id]; ok && (st.latest == nil || m.ID > st.latest.ID) {
		st.latest = m
	}
}
