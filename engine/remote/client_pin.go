package remote

import (
	"context"
	"fmt"
	"sync"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/engine"
)

// pin is a pin the engine holds for the client. Its paths came with the
// Pin answer, so Path asks nothing of the engine: it answers ErrPinLost
// once the pin was released, its session ended, or its TTL ran out since
// the last renewal began (the engine's clock starts later: the client
// gives up first).
type pin struct {
	c     *Client
	s     *clientSession
	id    string
	md    engine.Metadata
	paths map[string]string
	ttl   time.Duration

	mu       sync.Mutex
	renewed  time.Time
	released bool
}

var _ engine.Pin = (*pin)(nil)

func (p *pin) ID() string                { return p.id }
func (p *pin) Metadata() engine.Metadata { return p.md }

func (p *pin) lost() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.released:
		return fmt.Errorf("%w: pin %s was released", engine.ErrPinLost, p.id)
	case !p.s.alive():
		return fmt.Errorf("%w: pin %s: the engine session %s ended", engine.ErrPinLost, p.id, p.s.id)
	case p.ttl > 0 && time.Since(p.renewed) > p.ttl:
		return fmt.Errorf("%w: pin %s was not renewed for its TTL %v", engine.ErrPinLost, p.id, p.ttl)
	}
	return nil
}

func (p *pin) Path(name string) (string, error) {
	if err := p.lost(); err != nil {
		return "", err
	}
	if err := engine.ValidateName(name); err != nil {
		return "", err
	}
	path, ok := p.paths[name]
	if !ok {
		return "", fmt.Errorf("%w: file %s is not in commit %d (pin %s)", engine.ErrNotFound, name, p.md.Generation, p.id)
	}
	return path, nil
}

func (p *pin) Renew(ctx context.Context) error {
	if err := p.lost(); err != nil {
		return err
	}
	cctx, err := p.c.call(ctx, p.s)
	if err != nil {
		return err
	}
	start := time.Now()
	if _, err := p.c.rpc.RenewPin(cctx, &pb.EnginePinIdRequest{PinId: p.id}); err != nil {
		return p.c.wrap("renew pin "+p.id, err)
	}
	p.mu.Lock()
	p.renewed = start
	p.mu.Unlock()
	return nil
}

func (p *pin) Release(ctx context.Context) error {
	p.mu.Lock()
	if p.released {
		p.mu.Unlock()
		return nil
	}
	p.released = true
	p.mu.Unlock()
	if !p.s.alive() {
		return nil // the session's end released it
	}
	cctx, err := p.c.call(ctx, p.s)
	if err != nil {
		return nil // closed: the session's end released it
	}
	_, err = p.c.rpc.ReleasePin(cctx, &pb.EnginePinIdRequest{PinId: p.id})
	return p.c.wrap("release pin "+p.id, err)
}

// staging is a staging the engine holds for the client; Dir is on the
// shared data volume.
type staging struct {
	c     *Client
	s     *clientSession
	h     string
	id    string
	dir   string
	shard engine.ShardID
}

var _ engine.Staging = (*staging)(nil)

func (st *staging) ID() string  { return st.id }
func (st *staging) Dir() string { return st.dir }

func (st *staging) what(call string) string {
	return call + " staging " + st.id + " of " + st.shard.String()
}

func (st *staging) AppendOps(ctx context.Context, ops []engine.Op) error {
	cctx, err := st.c.call(ctx, st.s)
	if err != nil {
		return err
	}
	_, err = st.c.rpc.AppendOps(cctx, &pb.AppendOpsRequest{Staging: st.h, Ops: opsToPB(ops)})
	return st.c.wrap(st.what("append ops to"), err)
}

func (st *staging) DiscardOps(ctx context.Context) error {
	cctx, err := st.c.call(ctx, st.s)
	if err != nil {
		return err
	}
	_, err = st.c.rpc.DiscardOps(cctx, &pb.StagingRequest{Staging: st.h})
	return st.c.wrap(st.what("discard the ops of"), err)
}

func (st *staging) Publish(ctx context.Context, files []engine.FileMeta, commit engine.CommitData) error {
	cctx, err := st.c.call(ctx, st.s)
	if err != nil {
		return err
	}
	req := &pb.PublishRequest{Staging: st.h, Commit: commitToPB(commit)}
	for _, f := range files {
		req.Files = append(req.Files, &pb.FileMeta{Name: f.Name, Length: f.Length, Crc32C: f.CRC32C, WriterUuid: f.WriterUUID})
	}
	_, err = st.c.rpc.Publish(cctx, req)
	return st.c.wrap(st.what("publish"), err)
}

func (st *staging) Abandon(ctx context.Context) error {
	cctx, err := st.c.call(ctx, st.s)
	if err != nil {
		return err
	}
	_, err = st.c.rpc.Abandon(cctx, &pb.StagingRequest{Staging: st.h})
	return st.c.wrap(st.what("abandon"), err)
}

func (st *staging) Suspend(ctx context.Context) error {
	cctx, err := st.c.call(ctx, st.s)
	if err != nil {
		return err
	}
	_, err = st.c.rpc.Suspend(cctx, &pb.StagingRequest{Staging: st.h})
	return st.c.wrap(st.what("suspend"), err)
}
