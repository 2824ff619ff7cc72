package snapshot

import (
	"errors"

	"github.com/recoverd/recoverd/internal/staging"
	"github.com/recoverd/recoverd/shardstore"
)

// stage is a recovery's staging on a shardstore target as recoverd drives
// it: the engine's staging (ops, publish) and the area recoverd writes its
// files into (internal/staging).
type stage struct {
	*staging.Area
	st *shardstore.Staging
}

// startStage starts a staging of recovery id on tgt.
func startStage(tgt *shardstore.Shard, id string) (*stage, error) {
	st, err := tgt.StartStaging(id)
	if err != nil {
		return nil, err
	}
	area, err := staging.Open(id, st.Dir(), staging.Options{})
	if err != nil {
		return nil, errors.Join(err, st.Abandon())
	}
	return &stage{Area: area, st: st}, nil
}

// Publish fsyncs the staged files and publishes them, as recoverd does.
func (s *stage) Publish(files []shardstore.FileMeta, commit shardstore.CommitData) error {
	if err := s.Sync(files); err != nil {
		return err
	}
	return s.st.Publish(files, commit)
}

// Abandon removes the staging.
func (s *stage) Abandon() error {
	s.Close()
	return s.st.Abandon()
}
