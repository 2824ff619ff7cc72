package recovery

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// ambiguousRepo answers every listing with an error that is both "not
// found" and "unavailable", as a repository of another implementation
// may: it is a read error, so it must not be taken for "no snapshot".
type ambiguousRepo struct{ snapshot.Repository }

func (ambiguousRepo) List(context.Context, string) ([]string, error) {
	return nil, fmt.Errorf("listing: %w, %w", snapshot.ErrNotFound, snapshot.ErrUnavailable)
}

func TestSnapshotInputClassifiesTheRepository(t *testing.T) {
	ctx := context.Background()
	newRepo := func(t *testing.T) *snapshot.LocalRepository {
		repo, err := snapshot.NewLocalRepository(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return repo
	}
	// withSnapshot holds one snapshot of shardID.
	withSnapshot := newRepo(t)
	s, err := shardstore.Open(t.TempDir(), shardID, shardstore.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write(t, s, 20, 0, 100)
	flush(t, s)
	created, err := snapshot.Create(ctx, withSnapshot, snapshot.StoreSource(s), snapshot.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// corrupt holds only a manifest that does not decode.
	corrupt := newRepo(t)
	if err := corrupt.Put(ctx, snapshot.ManifestKey(shardID, created.Manifest.ID), strings.NewReader("{not json"), 9); err != nil {
		t.Fatal(err)
	}
	// gone is a repository whose directory was removed.
	gone := newRepo(t)
	if err := os.RemoveAll(gone.Root()); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name    string
		repo    snapshot.Repository
		want    planner.SnapshotState
		wantErr string
	}{
		{name: "no repository", repo: nil, want: planner.SnapshotDisabled},
		{name: "empty", repo: newRepo(t), want: planner.SnapshotNone},
		{name: "one snapshot", repo: withSnapshot, want: planner.SnapshotAvailable},
		{name: "only a corrupt manifest", repo: corrupt, want: planner.SnapshotUnavailable, wantErr: "corrupt manifest"},
		{name: "directory removed", repo: gone, want: planner.SnapshotUnavailable, wantErr: "repository unavailable"},
		{name: "not found and unavailable", repo: ambiguousRepo{newRepo(t)}, want: planner.SnapshotUnavailable, wantErr: "repository unavailable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			snap, m := SnapshotInput(ctx, c.repo, shardID)
			if snap.State != c.want || !strings.Contains(snap.Err, c.wantErr) {
				t.Fatalf("SnapshotInput = %s (%q), want %s with an error about %q", snap.State, snap.Err, c.want, c.wantErr)
			}
			if c.want != planner.SnapshotAvailable {
				if m != nil || snap.ID != "" {
					t.Fatalf("%s, yet a snapshot %q is returned", snap.State, snap.ID)
				}
				return
			}
			if m == nil || snap.ID != created.Manifest.ID || m.ID != snap.ID || len(snap.Files) != len(m.Files) ||
				snap.Commit.MaxSeqNo != created.Manifest.Commit.MaxSeqNo {
				t.Fatalf("SnapshotInput = %+v, manifest %v; want snapshot %s", snap, m, created.Manifest.ID)
			}
		})
	}
}
