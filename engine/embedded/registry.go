package embedded

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/recoverd/recoverd/shardstore"
)

// Registry holds the shards of this node: the peer server reads them as a
// source, recoveries write them as a target, ShardService runs the
// reference engine on them.
//
// It knows every shard on disk (Discover, OpenAll) but holds open only
// those in use:
// a shard opens on its first access and closes once it has been idle for
// Limits.IdleAfter, or sooner when Limits.MaxOpen shards are open and
// another must open; one that something uses (a pinned commit, a staging,
// a write, a live lease, a refusal of writes, a call through the engine
// contract) is never closed. A node of 100,000 shards thus holds the
// descriptors and memory of the few in use (registry_idle.go).
//
// A shard that does not open is kept out of the way by what its error
// proves. ErrCorrupt (a checksum or format failure) is reported corrupt
// and moved aside only by a recovery onto this node (OpenTarget). Any
// other error (a read error, too many open files, its lock held) proves
// nothing about the data: the shard stays where it is, is reported
// unavailable, and is opened again on its next access.
type Registry struct {
	dataDir string
	opts    shardstore.Options
	log     *slog.Logger

	mu     sync.Mutex
	closed bool
	limits Limits
	// roomIdle: see defaultRoomIdle.
	roomIdle time.Duration
	// shards holds an entry per shard known: on disk (open or not) or
	// being created by a recovery; open holds those open.
	shards map[shardstore.ShardID]*entry
	open   map[*entry]struct{}
	idle   *time.Timer // closes idle shards; armed while any is open
	// opening counts the shards being opened (the lock released);
	// opened is signalled whenever one is done.
	opening int
	opened  sync.Cond
	// scanDone is closed when the scan Discover started ends.
	scanDone chan struct{}
	// failed holds the shards on disk whose last open failed.
	failed map[shardstore.ShardID]OpenFailure
	// refused holds, per shard, the recoveries refusing its primary
	// writes (RefuseWrites), applied to the shard whenever it opens.
	refused map[shardstore.ShardID]map[string]bool
}

// entry is one shard of the registry. Its Shard is nil while closed: the
// next access opens it again, and the handles of the engine contract
// (engine.go) stay valid across. gone is set once the copy is removed,
// moved aside or the registry closed: those handles then answer ErrClosed.
type entry struct {
	id      shardstore.ShardID
	s       *shardstore.Shard
	users   int       // calls through the engine contract in progress
	lastUse time.Time // last access
	gone    bool
	// scanned is set once the shard was opened, or its open failed, in
	// this process: until then it is a directory on disk that the scan
	// (registry_scan.go) will open.
	scanned bool
	opening bool // being opened, the registry's lock released
	target  bool // handed to a recovery (OpenTarget)
	// listed is set once stats hold the shard's commit, read for a
	// listing before the scan opened it.
	listed bool
	// stats are the shard's numbers when it last closed (what ListShards
	// reports of a shard not open).
	stats shardstore.Stats
}

// OpenFailure is the last failed open of a shard.
type OpenFailure struct {
	Err     error
	Corrupt bool
	Since   time.Time
}

// NewRegistry returns an empty registry of the shards under dataDir, with
// DefaultLimits.
func NewRegistry(dataDir string, opts shardstore.Options, log *slog.Logger) *Registry {
	r := &Registry{dataDir: dataDir, opts: opts, log: log, limits: DefaultLimits(), roomIdle: defaultRoomIdle,
		shards: map[shardstore.ShardID]*entry{}, open: map[*entry]struct{}{}, failed: map[shardstore.ShardID]OpenFailure{},
		refused: map[shardstore.ShardID]map[string]bool{}}
	r.opened.L = &r.mu
	return r
}

// Shard returns an open shard, opening it if it exists on disk (the
// reference engine's own handle: the document API's; recoverd's goes
// through Engine). The shard stays open while something uses it (a
// pinned commit, a staging, a lease, a write in flight) and after its last
// use for Limits.IdleAfter, or 100 ms once Limits.MaxOpen shards are open:
// a caller that holds it longer unused may find it closed (ErrClosed) and
// asks again. A shard a recovery is creating is none yet: the error wraps
// shardstore.ErrNotFound (peers are told the node does not hold it) and
// shardstore.ErrNoCommit.
func (r *Registry) Shard(id shardstore.ShardID) (*shardstore.Shard, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, err := r.openLocked(id, false, false)
	if err != nil {
		return nil, err
	}
	if !e.s.Committed() {
		return nil, r.errRecoveringLocked(id)
	}
	return e.s, nil
}

// errRecoveringLocked answers a lookup of a shard a recovery is creating,
// naming the recoveries that refuse writes to it (RefuseWrites).
func (r *Registry) errRecoveringLocked(id shardstore.ShardID) error {
	by := "a recovery"
	if ids := slices.Sorted(maps.Keys(r.refused[id])); len(ids) > 0 {
		by = "recovery " + strings.Join(ids, ", ")
	}
	return fmt.Errorf("%w: %w: shard %s is being created by %s onto this node and exists once it publishes (or cancel it)",
		shardstore.ErrNotFound, shardstore.ErrNoCommit, id, by)
}

// openLocked returns the entry of a shard, open; create makes a missing
// one, with its first commit unless uncommitted (a recovery's target). The
// registry's lock is released while the shard opens (other shards are
// served meanwhile); a second caller for the same shard waits for the
// first.
func (r *Registry) openLocked(id shardstore.ShardID, create, uncommitted bool) (*entry, error) {
	e := r.shards[id]
	for e != nil && e.opening {
		r.opened.Wait()
		e = r.shards[id]
	}
	if r.closed {
		return nil, fmt.Errorf("%w: the node's shards are closed (it is stopping)", shardstore.ErrClosed)
	}
	if e != nil && e.s != nil {
		e.lastUse = time.Now()
		return e, nil
	}
	if len(r.open) >= r.limits.MaxOpen {
		// Room for a quarter more, so that opening many shards in turn
		// does not sort the open ones at every step.
		r.closeIdleLocked(r.roomIdle, r.limits.MaxOpen*3/4)
		if len(r.open) >= 2*r.limits.MaxOpen {
			// Twice the bound: the grace goes, only shards in use stay.
			r.closeIdleLocked(0, r.limits.MaxOpen)
		}
	}
	if e == nil {
		e = &entry{id: id}
		r.shards[id] = e
	}
	opts := r.opts
	opts.Create, opts.Uncommitted = create, uncommitted
	e.opening = true
	r.opening++
	r.mu.Unlock()
	s, err := shardstore.Open(r.dataDir, id, opts)
	r.mu.Lock()
	e.opening = false
	r.opening--
	r.opened.Broadcast()
	if err == nil && (r.closed || e.gone) {
		err = errors.Join(fmt.Errorf("%w: the node's shards are closed (it is stopping)", shardstore.ErrClosed), s.Close())
	}
	if err != nil {
		if !errors.Is(err, shardstore.ErrClosed) {
			r.noteFailureLocked(id, err)
		}
		e.scanned = true
		if errors.Is(err, shardstore.ErrNotFound) && r.shards[id] == e && e.s == nil {
			delete(r.shards, id) // no commit on disk: not a shard
		}
		return nil, err
	}
	if f, ok := r.failed[id]; ok {
		r.log.Info("shard opened", "shard", id.String(), "was", f.State(), "since", f.Since)
		delete(r.failed, id)
	}
	for rid := range r.refused[id] {
		s.RefuseWrites(rid)
	}
	e.s, e.lastUse, e.scanned = s, time.Now(), true
	r.open[e] = struct{}{}
	r.armIdleLocked()
	return e, nil
}

// noteFailureLocked records a failed open and logs it when the shard's
// state changes.
func (r *Registry) noteFailureLocked(id shardstore.ShardID, err error) {
	if errors.Is(err, shardstore.ErrNotFound) || errors.Is(err, shardstore.ErrInvalidName) {
		delete(r.failed, id)
		return
	}
	f := OpenFailure{Err: err, Corrupt: errors.Is(err, shardstore.ErrCorrupt), Since: time.Now()}
	prev, seen := r.failed[id]
	if seen && prev.Corrupt == f.Corrupt {
		f.Since = prev.Since
	}
	r.failed[id] = f
	switch {
	case seen && prev.Corrupt == f.Corrupt:
		r.log.Debug("shard still does not open", "shard", id.String(), "state", f.State(), "error", err)
	case f.Corrupt:
		r.log.Error("shard is damaged; a recovery onto this node will move it aside and rebuild it", "shard", id.String(), "error", err)
	default:
		r.log.Warn("shard cannot be read now; it stays where it is, reported unavailable, and is opened again on its next access",
			"shard", id.String(), "error", err)
	}
}

func (f OpenFailure) State() string {
	if f.Corrupt {
		return "corrupt"
	}
	return "unavailable"
}

// Create creates an empty shard with a new history.
func (r *Registry) Create(id shardstore.ShardID, existOK bool) (*shardstore.Shard, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.shards[id]
	if e != nil && e.s != nil && !e.s.Committed() {
		return nil, r.errRecoveringLocked(id)
	}
	if e != nil && e.s != nil || shardstore.Exists(r.dataDir, id) {
		if !existOK {
			return nil, fmt.Errorf("shard %s already exists", id)
		}
	}
	e, err := r.openLocked(id, true, false)
	if err != nil {
		return nil, err
	}
	return e.s, nil
}

// OpenTarget opens the shard a recovery writes into. A shard that does not exist is
// opened without a commit: it becomes a shard of this node when the
// recovery publishes. A shard that does not open because its data is
// damaged (shardstore.ErrCorrupt) is moved to <data>/quarantine (never
// deleted) and an uncommitted one takes its place. Any other failure
// (shardstore.ErrUnavailable) leaves the shard where it is and fails the
// call: a recovery must not replace a copy that could not be read now.
func (r *Registry) OpenTarget(id shardstore.ShardID) (*shardstore.Shard, string, error) {
	e, replaced, err := r.openTarget(id)
	if err != nil {
		return nil, replaced, err
	}
	return e.s, replaced, nil
}

func (r *Registry) openTarget(id shardstore.ShardID) (*entry, string, error) {
	if err := id.Validate(); err != nil {
		return nil, "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, err := r.openLocked(id, true, true)
	if err == nil {
		e.target = true
	}
	if err == nil || !errors.Is(err, shardstore.ErrCorrupt) {
		return e, "", err
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
	if old := r.shards[id]; old != nil {
		old.gone = true
		delete(r.shards, id)
		delete(r.open, old) // its open failed: it is not open
	}
	e, err = r.openLocked(id, true, true)
	if err == nil {
		e.target = true
	}
	return e, unreadable, err
}

// NotOpen lists the shards on disk whose last open failed, and counts
// them by state, for ListShards and the metrics.
func (r *Registry) NotOpen() map[shardstore.ShardID]OpenFailure {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.failed)
}

// RemoveUncommitted closes and deletes the shard if it is open without a
// commit (a recovery that created it ended without publishing); a shard
// with a commit is left alone.
func (r *Registry) RemoveUncommitted(id shardstore.ShardID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.shards[id]
	if e == nil || e.s == nil || e.s.Committed() {
		return nil
	}
	s := e.s
	e.gone, e.s = true, nil
	delete(r.shards, id)
	delete(r.open, e)
	err := errors.Join(s.Close(), os.RemoveAll(s.Path()))
	r.log.Info("removed the shard a recovery created and did not publish", "shard", id.String(), "error", err)
	return err
}

// SweepUncommitted deletes the shard directories without a commit that
// no open shard owns and keep does not name (the targets of recoveries
// that resume): what recoveries that never published left when the node
// stopped. Nothing in them was a shard. It returns the ids removed. The
// directories are read without the registry's lock (the shards are served
// meanwhile); each is checked again under it before it goes.
func (r *Registry) SweepUncommitted(keep map[shardstore.ShardID]bool) ([]shardstore.ShardID, error) {
	ids, err := shardDirs(r.dataDir)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	candidates := ids[:0]
	for _, id := range ids {
		if e := r.shards[id]; keep[id] || e != nil && (e.s != nil || e.opening || e.stats.Generation > 0) {
			continue // in use, kept, or known to hold a commit
		}
		candidates = append(candidates, id)
	}
	r.mu.Unlock()
	var removed []shardstore.ShardID
	for _, id := range candidates {
		if shardstore.Exists(r.dataDir, id) {
			continue
		}
		r.mu.Lock()
		if e := r.shards[id]; e != nil && (e.s != nil || e.opening) || shardstore.Exists(r.dataDir, id) {
			r.mu.Unlock()
			continue
		}
		if err := os.RemoveAll(shardstore.Dir(r.dataDir, id)); err != nil {
			r.mu.Unlock()
			return removed, err
		}
		if e := r.shards[id]; e != nil {
			e.gone = true
			delete(r.shards, id)
		}
		r.mu.Unlock()
		removed = append(removed, id)
		r.log.Info("removed a shard directory without a commit: a recovery created it and never published", "shard", id.String())
	}
	return removed, nil
}

// RefuseWrites makes shard id refuse primary writes, merges and
// promotions until ResumeWrites(id, recoveryID) (shardstore
// Shard.RefuseWrites), whether it is open now or opens later.
func (r *Registry) RefuseWrites(id shardstore.ShardID, recoveryID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refused[id] == nil {
		r.refused[id] = map[string]bool{}
	}
	r.refused[id][recoveryID] = true
	if e := r.shards[id]; e != nil && e.s != nil {
		e.s.RefuseWrites(recoveryID)
	}
}

// ResumeWrites lifts the refusal recoveryID holds on shard id.
func (r *Registry) ResumeWrites(id shardstore.ShardID, recoveryID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if delete(r.refused[id], recoveryID); len(r.refused[id]) == 0 {
		delete(r.refused, id)
	}
	if e := r.shards[id]; e != nil && e.s != nil {
		e.s.ResumeWrites(recoveryID)
	}
}

// CloseAll closes every open shard and stops the scan; the registry opens
// none after it.
func (r *Registry) CloseAll() error {
	r.mu.Lock()
	scan := r.scanDone
	r.mu.Unlock()
	defer func() {
		if scan != nil {
			<-scan
		}
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for r.opening > 0 {
		r.opened.Wait() // each closes what it opened, seeing r.closed
	}
	if r.idle != nil {
		r.idle.Stop()
		r.idle = nil
	}
	var errs []error
	for id, e := range r.shards {
		e.gone = true
		if e.s != nil {
			errs = append(errs, e.s.Close())
			e.s = nil
		}
		delete(r.shards, id)
	}
	clear(r.open)
	return errors.Join(errs...)
}

// DataDir is the data directory the shards live under.
func (r *Registry) DataDir() string { return r.dataDir }
