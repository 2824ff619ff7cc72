package embedded

import (
	"context"
	"fmt"
	"sync"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/shardstore"
)

// Engine is the reference engine in recoverd's process, through the engine
// contract: an engine.Engine over a Registry.
type Engine struct {
	reg *Registry

	mu     sync.Mutex
	closed bool
	pins   map[*pin]bool // live pins, released by Close
}

var _ engine.Engine = (*Engine)(nil)

// New returns the engine of the shards reg holds. Close closes reg.
func New(reg *Registry) *Engine {
	return &Engine{reg: reg, pins: map[*pin]bool{}}
}

// Registry is the registry under the engine: the reference engine's own
// API (the document service uses its shards directly).
func (e *Engine) Registry() *Registry { return e.reg }

func (e *Engine) check(ctx context.Context) error {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return fmt.Errorf("%w: the engine is closed", engine.ErrClosed)
	}
	return ctx.Err()
}

// Version implements engine.Engine.
func (e *Engine) Version() engine.Version {
	return engine.Version{Writer: shardstore.WriterVersion, MaxFormat: shardstore.FormatVersion}
}

// Shards implements engine.Engine: the committed shards served (open
// now, or opened on their next access), and those whose last open failed,
// unavailable or corrupt. It opens none.
func (e *Engine) Shards(ctx context.Context) ([]engine.ShardStatus, error) {
	if err := e.check(ctx); err != nil {
		return nil, err
	}
	var out []engine.ShardStatus
	for _, l := range e.reg.Listing() {
		out = append(out, engine.ShardStatus{ID: l.Stats.ID, State: engine.StateOpen})
	}
	for id, f := range e.reg.NotOpen() {
		st := engine.StateUnavailable
		if f.Corrupt {
			st = engine.StateCorrupt
		}
		out = append(out, engine.ShardStatus{ID: id, State: st, Reason: f.Err.Error(), Since: f.Since})
	}
	return out, nil
}

// Shard implements engine.Engine.
func (e *Engine) Shard(ctx context.Context, id engine.ShardID) (engine.Shard, error) {
	if err := e.check(ctx); err != nil {
		return nil, err
	}
	ent, err := e.reg.shardEntry(id)
	if err != nil {
		return nil, err
	}
	return &shard{e: e, ent: ent}, nil
}

// OpenTarget implements engine.Engine.
func (e *Engine) OpenTarget(ctx context.Context, id engine.ShardID) (engine.Target, string, error) {
	if err := e.check(ctx); err != nil {
		return nil, "", err
	}
	ent, replaced, err := e.reg.openTarget(id)
	if err != nil {
		return nil, replaced, err
	}
	return &shard{e: e, ent: ent}, replaced, nil
}

// RemoveUncommitted implements engine.Engine.
func (e *Engine) RemoveUncommitted(ctx context.Context, id engine.ShardID) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	if err := id.Validate(); err != nil {
		return err
	}
	return e.reg.RemoveUncommitted(id)
}

// SweepUncommitted implements engine.Engine.
func (e *Engine) SweepUncommitted(ctx context.Context, keep map[engine.ShardID]bool) ([]engine.ShardID, error) {
	if err := e.check(ctx); err != nil {
		return nil, err
	}
	return e.reg.SweepUncommitted(keep)
}

// RefuseWrites implements engine.Engine.
func (e *Engine) RefuseWrites(ctx context.Context, id engine.ShardID, recoveryID string) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	if err := id.Validate(); err != nil {
		return err
	}
	if err := engine.ValidateName(recoveryID); err != nil {
		return fmt.Errorf("recovery id: %w", err)
	}
	e.reg.RefuseWrites(id, recoveryID)
	return nil
}

// ResumeWrites implements engine.Engine.
func (e *Engine) ResumeWrites(ctx context.Context, id engine.ShardID, recoveryID string) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	if err := id.Validate(); err != nil {
		return err
	}
	e.reg.ResumeWrites(id, recoveryID)
	return nil
}

// Close implements engine.Engine: it releases every pin and closes every
// shard (CloseAll), which removes the stagings not suspended.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	pins := e.pins
	e.pins = map[*pin]bool{}
	e.mu.Unlock()
	for p := range pins {
		p.end()
	}
	return e.reg.CloseAll()
}

// track and untrack keep the live pins, for Close.
func (e *Engine) track(p *pin) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.pins[p] = true
	return true
}

func (e *Engine) untrack(p *pin) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.pins, p)
}
