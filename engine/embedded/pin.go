package embedded

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/shardstore"
)

// pin is a shardstore.CommitRef through the contract, with a TTL: a timer
// that ends the pin once it has not been renewed for its TTL.
type pin struct {
	e   *Engine
	ent *entry // the shard's: a pinned shard is not closed idle
	id  string
	ref *shardstore.CommitRef
	ttl time.Duration

	mu      sync.Mutex
	renewed time.Time
	timer   *time.Timer
	ended   bool
}

var _ engine.Pin = (*pin)(nil)

func (s *shard) Pin(ctx context.Context, opts engine.PinOptions) (engine.Pin, error) {
	sh, done, err := s.use(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	if opts.TTL < 0 {
		return nil, fmt.Errorf("%w: pin TTL %v is negative", engine.ErrInvalidArgument, opts.TTL)
	}
	ref, err := sh.AcquireCommit()
	if err != nil {
		return nil, err
	}
	p := &pin{e: s.e, ent: s.ent, id: uuid.NewString(), ref: ref, ttl: opts.TTL, renewed: time.Now()}
	if !s.e.track(p) {
		ref.Release()
		return nil, fmt.Errorf("%w: the engine is closed", engine.ErrClosed)
	}
	if p.ttl > 0 {
		p.mu.Lock()
		p.timer = time.AfterFunc(p.ttl, p.expire)
		p.mu.Unlock()
	}
	return p, nil
}

// expire ends the pin when it was not renewed for its TTL, or re-arms.
func (p *pin) expire() {
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return
	}
	if left := p.ttl - time.Since(p.renewed); left > 0 {
		p.timer.Reset(left)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.end()
}

// end releases the commit once; later calls answer ErrPinLost.
func (p *pin) end() error {
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return nil
	}
	p.ended = true
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
	p.e.untrack(p)
	return p.ref.Release()
}

func (p *pin) lost() error {
	return fmt.Errorf("%w: pin %s of commit %d of %s", engine.ErrPinLost, p.id, p.ref.Metadata().Generation, p.ref.Shard().ID())
}

func (p *pin) ID() string { return p.id }

func (p *pin) Metadata() engine.Metadata { return p.ref.Metadata() }

func (p *pin) Path(name string) (string, error) {
	p.mu.Lock()
	ended := p.ended
	p.mu.Unlock()
	if ended {
		return "", p.lost()
	}
	path, _, err := p.ref.Path(name)
	return path, err
}

func (p *pin) Renew(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return p.lost()
	}
	p.renewed = time.Now()
	return nil
}

func (p *pin) Release(context.Context) error { return p.end() }

// live reports whether the pin still holds its commit.
func (p *pin) live() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.ended
}
