package cleanup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/snapshot"
)

// Kind names what a removal was.
type Kind string

// The kinds of removal, the values of the kind label.
const (
	KindStaging      Kind = "staging"       // a staging directory of a recovery not running
	KindTemp         Kind = "temp"          // a temp file of an interrupted durable write in a shard
	KindUnreferenced Kind = "unreferenced"  // a file or op log epoch no commit or pin references
	KindLease        Kind = "lease"         // a retention lease past its TTL
	KindUncommitted  Kind = "uncommitted"   // a copy without a commit that a recovery created and never published
	KindUpload       Kind = "upload"        // a blob of an unfinished snapshot upload, marked and then past the deletion delay
	KindSnapshotBlob Kind = "snapshot_blob" // a blob of a deleted snapshot (gc, delete), marked and then past the deletion delay
	KindRepoTemp     Kind = "repo_temp"     // a temp file of an interrupted Put in a local repository
)

// Kinds lists every kind.
var Kinds = []Kind{KindStaging, KindTemp, KindUnreferenced, KindLease, KindUncommitted, KindUpload, KindSnapshotBlob, KindRepoTemp}

// Removal is one thing a sweep removed.
type Removal struct {
	Kind Kind
	// Shard is the shard it belonged to; zero for repository temp files.
	Shard engine.ShardID
	// Name is the recovery id (staging), file name, lease id or object key.
	Name string
}

// Report says what one sweep did.
type Report struct {
	Removed []Removal
	// Marked are the unfinished snapshot uploads marked for deletion
	// (Kind KindUpload): a later sweep deletes them once the deletion
	// delay has passed, if no snapshot took them meanwhile.
	Marked []Removal
	// Skipped says, in words, what was left alone because it could not be
	// read or was in use (e.g. a repository that is unreachable).
	Skipped []string
}

// Count returns how many removals of kind the report holds.
func (r Report) Count(kind Kind) int {
	n := 0
	for _, x := range r.Removed {
		if x.Kind == kind {
			n++
		}
	}
	return n
}

// tempRemover is implemented by repositories that keep temp files of
// interrupted writes (snapshot.LocalRepository).
type tempRemover interface {
	RemoveTemps(olderThan time.Duration, now time.Time) ([]string, error)
}

// Config configures a Sweeper.
type Config struct {
	// Engine is the node's storage engine (required): its open shards are
	// swept (engine.Shard.Sweep), and the copies without a commit no
	// running recovery uses removed (Engine.SweepUncommitted).
	Engine engine.Engine
	// Running maps the shards being recovered onto this node to their
	// recovery ids (recovery.Manager.ActiveStagings); nil means none.
	Running func() map[engine.ShardID]string
	// Uploading reports whether a snapshot upload of a shard is in
	// progress in this process; its unfinished uploads are then left for a
	// later sweep. Nil means never.
	Uploading func(engine.ShardID) bool
	// Repo is the snapshot repository; nil skips the repository sweep.
	Repo snapshot.Repository
	// UploadGrace is the age after which a blob no manifest references
	// counts as an abandoned upload; required (> 0) with a Repo.
	UploadGrace time.Duration
	// DeletionDelay is how long a blob stays marked for deletion before a
	// sweep deletes it (snapshot.DeleteOptions.Delay; default
	// snapshot.DefaultDeletionDelay).
	DeletionDelay time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives one line per removal; nil discards.
	Logger *slog.Logger
	// Registerer receives the cleanup metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Sweeper removes leftovers; see the package doc for what and when.
type Sweeper struct {
	cfg     Config
	metrics *metrics
	mu      sync.Mutex // one sweep at a time
}

// New returns a Sweeper and registers its metrics.
func New(cfg Config) (*Sweeper, error) {
	if cfg.Engine == nil {
		return nil, errors.New("cleanup: Config.Engine is required")
	}
	if cfg.Repo != nil && cfg.UploadGrace <= 0 {
		return nil, fmt.Errorf("cleanup: the upload grace must be positive (it protects uploads in progress), got %v", cfg.UploadGrace)
	}
	if cfg.Running == nil {
		cfg.Running = func() map[engine.ShardID]string { return nil }
	}
	if cfg.Uploading == nil {
		cfg.Uploading = func(engine.ShardID) bool { return false }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DeletionDelay <= 0 {
		cfg.DeletionDelay = snapshot.DefaultDeletionDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{cfg: cfg, metrics: newMetrics(cfg.Registerer)}, nil
}

// Run sweeps once now and then every interval until ctx is done; with an
// interval <= 0 it sweeps once. Errors are logged, never fatal.
func (s *Sweeper) Run(ctx context.Context, interval time.Duration) {
	s.runLogged(ctx)
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.runLogged(ctx)
		}
	}
}

func (s *Sweeper) runLogged(ctx context.Context) {
	start := time.Now()
	rep, err := s.RunOnce(ctx)
	if ctx.Err() != nil {
		return
	}
	attrs := []any{"removed", len(rep.Removed), "skipped", len(rep.Skipped), "took", time.Since(start).Round(time.Millisecond)}
	if err != nil {
		s.cfg.Logger.Warn("cleanup sweep finished with errors", append(attrs, "error", err)...)
		return
	}
	s.cfg.Logger.Debug("cleanup sweep finished", attrs...)
}

// RunOnce sweeps every open shard, then the copies without a commit,
// and, in the repository, the prefixes of the open shards once. It goes
// on past a failure (the shard or repository shard is skipped) and
// returns every failure joined; the report holds what was removed either
// way.
func (s *Sweeper) RunOnce(ctx context.Context) (Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rep Report
	var errs []error
	running := s.cfg.Running()
	held, err := s.sweepShards(ctx, &rep, running)
	if err != nil {
		if ctx.Err() != nil {
			return rep, err
		}
		errs = append(errs, err)
	}
	keep := make(map[engine.ShardID]bool, len(running))
	for id := range running {
		keep[id] = true
	}
	removed, err := s.cfg.Engine.SweepUncommitted(ctx, keep)
	for _, id := range removed {
		s.removed(&rep, KindUncommitted, id, id.String())
	}
	if err != nil {
		err = fmt.Errorf("cleanup: copies without a commit: %w", err)
		s.failed(&rep, stepUncommitted, err)
		errs = append(errs, err)
	}
	if s.cfg.Repo != nil {
		errs = append(errs, s.sweepRepo(ctx, &rep, held))
	}
	s.metrics.runs.Inc()
	s.metrics.lastRun.Set(float64(s.cfg.Now().Unix()))
	return rep, errors.Join(errs...)
}

// sweepShards sweeps every open shard of the engine (engine.Shard.Sweep:
// stagings of recoveries not running, temp files, unreferenced files,
// expired leases) and returns their ids. A shard closed or gone meanwhile
// (the node is stopping, or a recovery replaced it) is skipped.
func (s *Sweeper) sweepShards(ctx context.Context, rep *Report, running map[engine.ShardID]string) ([]engine.ShardID, error) {
	statuses, err := s.cfg.Engine.Shards(ctx)
	if err != nil {
		if ctx.Err() == nil {
			err = fmt.Errorf("cleanup: list the shards: %w", err)
			s.failed(rep, stepShard, err)
		}
		return nil, err
	}
	var (
		held []engine.ShardID
		errs []error
	)
	for _, st := range statuses {
		if err := ctx.Err(); err != nil {
			return held, err
		}
		if st.State != engine.StateOpen {
			continue
		}
		id := st.ID
		sh, err := s.cfg.Engine.Shard(ctx, id)
		if errors.Is(err, engine.ErrNotFound) || errors.Is(err, engine.ErrClosed) {
			continue
		}
		if err != nil {
			err = fmt.Errorf("cleanup: shard %s: %w", id, err)
			s.failed(rep, stepShard, err)
			errs = append(errs, err)
			continue
		}
		held = append(held, id)
		keep := map[string]bool{}
		if rid, ok := running[id]; ok {
			keep[rid] = true
		}
		res, err := sh.Sweep(ctx, keep)
		for _, n := range res.Staging {
			s.removed(rep, KindStaging, id, n)
		}
		for _, n := range res.Temps {
			s.removed(rep, KindTemp, id, n)
		}
		for _, n := range res.Unreferenced {
			s.removed(rep, KindUnreferenced, id, n)
		}
		for _, n := range res.Leases {
			s.removed(rep, KindLease, id, n)
		}
		if errors.Is(err, engine.ErrClosed) {
			continue // closed meanwhile (the node is stopping, or it was replaced)
		}
		if err != nil {
			err = fmt.Errorf("cleanup: shard %s: %w", id, err)
			s.failed(rep, stepShard, err)
			errs = append(errs, err)
		}
	}
	return held, errors.Join(errs...)
}

// sweepRepo removes the unfinished uploads older than the grace of the
// shards this node holds, listing each one's prefixes only (never the
// whole repository, which every node shares); whatever cannot be read is
// skipped, never deleted. A repository found unavailable ends the sweep:
// the next shards would only wait for the same retries.
func (s *Sweeper) sweepRepo(ctx context.Context, rep *Report, held []engine.ShardID) error {
	repo, grace, now := s.cfg.Repo, s.cfg.UploadGrace, s.cfg.Now()
	var errs []error
	if tr, ok := repo.(tempRemover); ok {
		keys, err := tr.RemoveTemps(grace, now)
		for _, k := range keys {
			s.removed(rep, KindRepoTemp, engine.ShardID{}, k)
		}
		if err != nil {
			err = fmt.Errorf("cleanup: temp files of %s: %w", repo, err)
			s.failed(rep, stepRepository, err)
			errs = append(errs, err)
		}
	}
	slices.SortFunc(held, func(a, b engine.ShardID) int { return strings.Compare(a.String(), b.String()) })
	for i, id := range held {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if s.cfg.Uploading(id) {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("unfinished uploads of %s: a snapshot of it is being uploaded", id))
			continue
		}
		res, err := snapshot.RemoveUnfinished(ctx, repo, id, grace, snapshot.DeleteOptions{Delay: s.cfg.DeletionDelay, Now: func() time.Time { return now }})
		for _, b := range res.Marked {
			rep.Marked = append(rep.Marked, Removal{Kind: KindUpload, Shard: id, Name: b.Key})
			s.cfg.Logger.Info("cleanup marked for deletion", "kind", string(KindUpload), "name", b.Key, "shard", id.String(), "delay", s.cfg.DeletionDelay)
		}
		for _, b := range res.Deleted {
			kind := KindSnapshotBlob
			if b.Reason == snapshot.ReasonUnfinished {
				kind = KindUpload
			}
			s.removed(rep, kind, id, b.Key)
		}
		if err != nil {
			err = fmt.Errorf("cleanup: unfinished uploads of %s skipped: %w", id, err)
			s.failed(rep, stepRepository, err)
			errs = append(errs, err)
			if errors.Is(err, snapshot.ErrUnavailable) {
				if rest := len(held) - i - 1; rest > 0 {
					rep.Skipped = append(rep.Skipped, fmt.Sprintf("unfinished uploads of %d more shards: repository %s unavailable, nothing deleted", rest, repo))
				}
				break
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Sweeper) removed(rep *Report, kind Kind, id engine.ShardID, name string) {
	rep.Removed = append(rep.Removed, Removal{Kind: kind, Shard: id, Name: name})
	s.metrics.removals.WithLabelValues(string(kind)).Inc()
	attrs := []any{"kind", string(kind), "name", name}
	if id != (engine.ShardID{}) {
		attrs = append(attrs, "shard", id.String())
	}
	s.cfg.Logger.Info("cleanup removed", attrs...)
}

func (s *Sweeper) failed(rep *Report, step string, err error) {
	rep.Skipped = append(rep.Skipped, err.Error())
	s.metrics.failures.WithLabelValues(step).Inc()
	s.cfg.Logger.Warn("cleanup skipped", "step", step, "error", err)
}
