// Package embeddedtest is what the engine acceptance suite (enginetest)
// needs of the reference engine, for every test that runs the suite on it:
// in process (engine/embedded) and behind the socket (engine/remote). It
// knows the reference engine's files, which the contract does not say.
package embeddedtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/engine/enginetest"
	"github.com/recoverd/recoverd/shardstore"
)

// Open opens the reference engine on dataDir with the suite's options, as
// recoverd does.
func Open(dataDir string, o enginetest.Options) (*embedded.Engine, error) {
	reg := embedded.NewRegistry(dataDir, shardstore.Options{KeepStaging: true, LeaseTTL: o.LeaseTTL, CopyRetention: o.CopyRetention, Failpoint: o.Failpoint},
		slog.New(slog.DiscardHandler))
	if err := reg.OpenAll(); err != nil {
		reg.CloseAll()
		return nil, err
	}
	return embedded.New(reg), nil
}

// Harness is the suite's harness for the reference engine: open opens the
// engine the suite sees, and reference finds the reference engine behind
// it (to write as its primary).
func Harness(open func(dataDir string, o enginetest.Options) (engine.Engine, error), reference func(engine.Engine) *embedded.Engine) enginetest.Harness {
	return enginetest.Harness{
		Replicates: true, // HandOff: shardstore's copy leases
		Open: func(_ testing.TB, dir string, o enginetest.Options) (engine.Engine, error) {
			return open(dir, o)
		},
		Index: func(ctx context.Context, e engine.Engine, id engine.ShardID, n int) error {
			s, err := reference(e).Registry().Shard(id)
			if err != nil {
				return err
			}
			docs := make([]shardstore.Doc, n)
			for i := range docs {
				docs[i] = shardstore.Doc{Key: fmt.Sprintf("primary-%d", i), Value: []byte("v")}
			}
			_, err = s.IndexBatch(ctx, docs)
			return err
		},
		Damage: func(t testing.TB, dir string, id engine.ShardID) {
			commit := newestCommit(t, dir, id)
			b, err := os.ReadFile(commit)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(commit, b, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		// A directory in place of the commit point: reading it fails with
		// EISDIR, a read error that proves nothing about the data.
		Unreadable: func(t testing.TB, dir string, id engine.ShardID) func() {
			commit := newestCommit(t, dir, id)
			if err := os.Rename(commit, commit+".aside"); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(commit, 0o755); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := os.Remove(commit); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(commit+".aside", commit); err != nil {
					t.Fatal(err)
				}
			}
		},
		PublishFailpoints: Failpoints,
	}
}

// Failpoints are the reference engine's failpoints across a Publish.
var Failpoints = []enginetest.Failpoint{
	{Name: "publish.before-rename"}, {Name: "publish.files-moved"}, {Name: "publish.before-commit"},
	{Name: "publish.after-commit", Committed: true},
}

func newestCommit(t testing.TB, dir string, id engine.ShardID) string {
	t.Helper()
	commits, err := filepath.Glob(filepath.Join(shardstore.Dir(dir, id), "commit_*"))
	if err != nil || len(commits) == 0 {
		t.Fatalf("no commit point of %s: %v", id, err)
	}
	slices.Sort(commits)
	return commits[len(commits)-1]
}
