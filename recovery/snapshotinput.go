package recovery

import (
	"context"
	"errors"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/snapshot"
)

// SnapshotInput asks repo for the latest snapshot of a shard and
// classifies the answer for the planner:
//
//   - disabled: repo is nil, no repository is configured;
//   - none: the repository answered and holds no snapshot of the shard;
//   - unavailable: it could not be read, or holds only corrupt manifests
//     (Err says why); an error that says both "not found" and
//     "unavailable" is unavailable: a read error is never "no snapshot";
//   - available: its latest readable snapshot, whose manifest is returned
//     too, with the files whose blobs are marked bad (snapshot.BadBlobs; a
//     planner leaves such a snapshot out). Marks that cannot be listed
//     make the repository unavailable: a snapshot is not vouched for
//     unread.
//
// Recoveries plan with it and recoverctl plan explains with it, so that
// both classify a repository alike.
func SnapshotInput(ctx context.Context, repo snapshot.Repository, id engine.ShardID) (planner.Snapshot, *snapshot.Manifest) {
	if repo == nil {
		return planner.Snapshot{State: planner.SnapshotDisabled}, nil
	}
	m, err := snapshot.Latest(ctx, repo, id)
	if err == nil {
		var bad snapshot.BadSet
		if bad, err = snapshot.BadBlobs(ctx, repo, id); err == nil {
			return planner.Snapshot{State: planner.SnapshotAvailable, ID: m.ID, Files: m.FileMetas(), Commit: m.Commit,
				BadBlobs: badBlobsInput(ctx, repo, id, m, bad)}, m
		}
	}
	switch {
	case errors.Is(err, snapshot.ErrNotFound) && !errors.Is(err, snapshot.ErrUnavailable):
		return planner.Snapshot{State: planner.SnapshotNone}, nil
	default:
		return planner.Snapshot{State: planner.SnapshotUnavailable, Err: err.Error()}, nil
	}
}
