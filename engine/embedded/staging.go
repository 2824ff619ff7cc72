package embedded

import (
	"context"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/shardstore"
)

// staging is a *shardstore.Staging through the contract.
type staging struct {
	st *shardstore.Staging
}

var _ engine.Staging = (*staging)(nil)

func (s *staging) ID() string  { return s.st.ID() }
func (s *staging) Dir() string { return s.st.Dir() }

func (s *staging) AppendOps(ctx context.Context, ops []engine.Op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.st.AppendOps(ops)
}

func (s *staging) DiscardOps(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.st.DiscardOps()
}

func (s *staging) Publish(ctx context.Context, files []engine.FileMeta, commit engine.CommitData) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.st.Publish(files, commit)
}

func (s *staging) Abandon(context.Context) error { return s.st.Abandon() }

func (s *staging) Suspend(context.Context) error { return s.st.Suspend() }
