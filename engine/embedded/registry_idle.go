package embedded

import (
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/recoverd/recoverd/shardstore"
)

// Limits bound what the registry holds open.
type Limits struct {
	// MaxOpen is how many shards may be open at once: opening one more
	// first closes the least recently used idle ones. Shards in use are
	// never closed, so more may be open while they are.
	MaxOpen int
	// IdleAfter closes a shard not accessed for this long and that
	// nothing uses.
	IdleAfter time.Duration
}

// Bounds of DefaultLimits.
const (
	maxOpenCeiling = 512
	maxOpenFloor   = 16
	// fdReserve is what the default MaxOpen leaves of the descriptor
	// limit to the node itself: listeners, connections, the files of
	// transfers and snapshots.
	fdReserve = 256
	// fdsPerShard is what an open shard may take while in use: its lock,
	// its op log while written, a file or two read for a peer.
	fdsPerShard    = 4
	defaultIdleFor = 30 * time.Second
	// defaultRoomIdle is how long a shard must have been left alone
	// before it is closed to make room for another (MaxOpen is reached):
	// longer than a caller holding a shard from the registry (Shard) takes
	// to use it; MaxOpen is exceeded while every open shard is that busy.
	// A recovery's target (OpenTarget) is left alone for IdleAfter.
	defaultRoomIdle = 100 * time.Millisecond
)

// DefaultLimits keeps at most 512 shards open, fewer under a small
// descriptor limit (a quarter of what the limit leaves after a reserve of
// 256 for the node itself), and closes a shard idle for 30 s.
func DefaultLimits() Limits {
	n := maxOpenCeiling
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(fdReserve+fdsPerShard*maxOpenCeiling) {
		n = max(maxOpenFloor, (int(rl.Cur)-fdReserve)/fdsPerShard)
	}
	return Limits{MaxOpen: n, IdleAfter: defaultIdleFor}
}

// SetLimits changes the limits (zero fields keep theirs); the next open
// or idle check applies them.
func (r *Registry) SetLimits(l Limits) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l.MaxOpen > 0 {
		r.limits.MaxOpen = l.MaxOpen
	}
	if l.IdleAfter > 0 {
		r.limits.IdleAfter = l.IdleAfter
	}
	if r.idle != nil {
		r.idle.Reset(r.limits.IdleAfter)
	}
}

// OpenNow is how many shards are open at this moment.
func (r *Registry) OpenNow() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.open)
}

// armIdleLocked starts the idle check if shards are open and none is due.
func (r *Registry) armIdleLocked() {
	if r.idle == nil && len(r.open) > 0 && !r.closed {
		r.idle = time.AfterFunc(r.limits.IdleAfter, r.closeIdle)
	}
}

// closeIdle closes the shards idle for Limits.IdleAfter, and checks again
// later while any is open.
func (r *Registry) closeIdle() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idle = nil
	if r.closed {
		return
	}
	r.closeIdleLocked(r.limits.IdleAfter, 0)
	r.armIdleLocked()
}

// closeIdleLocked closes the least recently used shards that nothing uses
// and that were neither accessed nor used for minIdle, until at most keep
// are open.
func (r *Registry) closeIdleLocked(minIdle time.Duration, keep int) {
	if len(r.open) <= keep {
		return
	}
	type idleShard struct {
		e    *entry
		used time.Time
	}
	var idle []idleShard
	for e := range r.open {
		used := e.lastUse
		if t := e.s.Touched(); t.After(used) {
			used = t
		}
		if e.users == 0 && time.Since(used) >= r.minIdleLocked(e, minIdle) {
			idle = append(idle, idleShard{e, used})
		}
	}
	slices.SortFunc(idle, func(a, b idleShard) int { return a.used.Compare(b.used) })
	for _, i := range idle {
		if len(r.open) <= keep {
			return
		}
		r.closeEntryLocked(i.e, r.minIdleLocked(i.e, minIdle))
	}
}

// minIdleLocked is how long e must have been left alone to be closed: a
// recovery's target, which the recovery holds between its calls, at
// least IdleAfter.
func (r *Registry) minIdleLocked(e *entry, minIdle time.Duration) time.Duration {
	if e.target {
		return max(minIdle, r.limits.IdleAfter)
	}
	return minIdle
}

// closeEntryLocked closes e's shard unless something uses it or used it
// less than minIdle ago.
func (r *Registry) closeEntryLocked(e *entry, minIdle time.Duration) {
	if e.users > 0 || time.Since(e.lastUse) < minIdle {
		return
	}
	closed, err := e.s.CloseIfIdle(minIdle)
	if err != nil {
		r.log.Warn("closing an idle shard", "shard", e.id.String(), "error", err)
	}
	if closed {
		e.stats = e.s.Stats()
		e.s = nil
		delete(r.open, e)
	}
}

// acquire returns e's shard, opening it again if it was closed idle, and
// keeps it open until release: a call through the engine contract. A
// copy removed or moved aside since, or a registry closed, answers
// ErrClosed.
func (r *Registry) acquire(e *entry) (*shardstore.Shard, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.gone || r.shards[e.id] != e {
		return nil, fmt.Errorf("%w: shard %s was closed (replaced, removed, or the node is stopping); ask for it again", shardstore.ErrClosed, e.id)
	}
	if e.s == nil {
		if _, err := r.openLocked(e.id, false, false); err != nil {
			return nil, err
		}
	}
	e.users++
	e.lastUse = time.Now()
	return e.s, nil
}

// release ends a use acquire began.
func (r *Registry) release(e *entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.users--
	e.lastUse = time.Now()
}

// shardEntry returns the entry of a committed shard, open (Engine.Shard, OpenTarget).
func (r *Registry) shardEntry(id shardstore.ShardID) (*entry, error) {
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
	return e, nil
}
