package embedded_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/engine/enginetest"
	"github.com/recoverd/recoverd/shardstore"
)

// harness opens the reference engine in process, as recoverd does.
func harness() enginetest.Harness {
	return enginetest.Harness{
		Replicates: true, // HandOff: shardstore's copy leases
		Open: func(_ testing.TB, dir string, o enginetest.Options) (engine.Engine, error) {
			reg := embedded.NewRegistry(dir, shardstore.Options{KeepStaging: true, LeaseTTL: o.LeaseTTL, CopyRetention: o.CopyRetention, Failpoint: o.Failpoint},
				slog.New(slog.DiscardHandler))
			if err := reg.OpenAll(); err != nil {
				reg.CloseAll()
				return nil, err
			}
			return embedded.New(reg), nil
		},
		Index: func(ctx context.Context, e engine.Engine, id engine.ShardID, n int) error {
			s, err := e.(*embedded.Engine).Registry().Shard(id)
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
		PublishFailpoints: []enginetest.Failpoint{
			{Name: "publish.before-rename"}, {Name: "publish.files-moved"}, {Name: "publish.before-commit"},
			{Name: "publish.after-commit", Committed: true},
		},
	}
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

func TestMain(m *testing.M) {
	enginetest.RunChild(harness())
	goleak.VerifyTestMain(m)
}

// TestAcceptance runs the engine contract's acceptance suite on the
// reference engine in process.
func TestAcceptance(t *testing.T) { enginetest.Run(t, harness()) }
