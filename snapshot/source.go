package snapshot

import (
	"context"
	"fmt"
	"os"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/shardstore"
)

// Source is what Create snapshots: a copy of a shard that pins its current
// commit through the engine contract (package engine). Every engine.Shard
// is one; Create reads the pinned files at the paths Pin.Path gives.
type Source interface {
	ID() shardstore.ShardID
	Pin(ctx context.Context, opts engine.PinOptions) (engine.Pin, error)
}

// StoreSource is a shardstore shard opened outside any engine (recoverctl
// snapshot create on a stopped node's data, tests) as a Source: its pins
// are commit references without a TTL.
func StoreSource(s *shardstore.Shard) Source { return storeSource{s} }

type storeSource struct{ s *shardstore.Shard }

func (s storeSource) ID() shardstore.ShardID { return s.s.ID() }

func (s storeSource) Pin(ctx context.Context, _ engine.PinOptions) (engine.Pin, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ref, err := s.s.AcquireCommit()
	if err != nil {
		return nil, err
	}
	return storePin{ref}, nil
}

type storePin struct{ ref *shardstore.CommitRef }

func (p storePin) ID() string {
	return fmt.Sprintf("%s@%d", p.ref.Shard().ID(), p.ref.Metadata().Generation)
}
func (p storePin) Metadata() engine.Metadata     { return p.ref.Metadata() }
func (p storePin) Renew(context.Context) error   { return nil }
func (p storePin) Release(context.Context) error { return p.ref.Release() }
func (p storePin) Path(name string) (string, error) {
	path, _, err := p.ref.Path(name)
	return path, err
}

// openPinned opens one file of a pinned commit for reading.
func openPinned(pin engine.Pin, name string) (*os.File, error) {
	path, err := pin.Path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: open %s of the pinned commit: %w", name, err)
	}
	return f, nil
}
