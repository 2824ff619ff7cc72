package cleanup

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// touchRepo is a repository that records every key and prefix asked of it
// (what a sweep touched) and can be made unreachable.
type touchRepo struct {
	flakyRepo
	mu      sync.Mutex
	touched []string // "op key-or-prefix"
}

func (r *touchRepo) touch(op, key string) {
	r.mu.Lock()
	r.touched = append(r.touched, op+" "+key)
	r.mu.Unlock()
}

func (r *touchRepo) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.touched
	r.touched = nil
	return t
}

func (r *touchRepo) List(ctx context.Context, prefix string) ([]string, error) {
	r.touch("list", prefix)
	return r.flakyRepo.List(ctx, prefix)
}

func (r *touchRepo) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	r.touch("get", key)
	return r.flakyRepo.Get(ctx, key)
}

func (r *touchRepo) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	r.touch("get", key)
	return r.flakyRepo.GetRange(ctx, key, off, n)
}

func (r *touchRepo) Stat(ctx context.Context, key string) (snapshot.ObjectInfo, error) {
	r.touch("head", key)
	return r.flakyRepo.Stat(ctx, key)
}

func (r *touchRepo) Put(ctx context.Context, key string, body io.Reader, size int64) error {
	r.touch("put", key)
	return r.flakyRepo.Put(ctx, key, body, size)
}

func (r *touchRepo) Delete(ctx context.Context, key string) error {
	r.touch("delete", key)
	return r.flakyRepo.Delete(ctx, key)
}

// TestSweepVisitsOnlyTheShardsItHolds: the repository is shared by every
// node, and a node's sweep reads and writes only the prefixes of the
// shards it holds, never the whole repository (at a fleet's scale, every
// node listing every shard is millions of requests per sweep). The
// unfinished uploads of shards held elsewhere are left to their holders,
// however old; a repository that cannot be read deletes nothing, and the
// sweep stops at the first shard that finds it unavailable.
func TestSweepVisitsOnlyTheShardsItHolds(t *testing.T) {
	clk := newClock()
	mine := []shardstore.ShardID{{Index: "logs", Shard: 1}, {Index: "metrics", Shard: 0}}
	theirs := []shardstore.ShardID{{Index: "logs", Shard: 10}, {Index: "logs", Shard: 2}, {Index: "traces", Shard: 0}}
	local, err := snapshot.NewLocalRepository(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo := &touchRepo{flakyRepo: flakyRepo{Repository: local}}
	var held []*shardstore.Shard
	orphan := map[shardstore.ShardID]string{}
	for i, id := range append(append([]shardstore.ShardID{}, mine...), theirs...) {
		sh := openShard(t, t.TempDir(), id, 50, clk)
		if _, err := snapshot.Create(ctx, repo, snapshot.StoreSource(sh), snapshot.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		orphan[id] = snapshot.BlobPrefix(id) + "orphan-1"
		putBlob(t, repo, orphan[id])
		past := time.Now().Add(-2 * time.Hour)
		if err := os.Chtimes(filepath.Join(local.Root(), filepath.FromSlash(orphan[id])), past, past); err != nil {
			t.Fatal(err)
		}
		if i < len(mine) {
			held = append(held, sh)
		}
	}
	repo.take()
	sw, _, _ := newSweeper(t, Config{Engine: shardsOf(held...), Repo: repo,
		UploadGrace: time.Hour, DeletionDelay: 10 * time.Minute, Now: clk.Now})

	// touchedOnlyMine checks every request of a sweep against the held
	// shards' prefixes.
	touchedOnlyMine := func(what string) {
		t.Helper()
		touched := repo.take()
		if len(touched) == 0 {
			t.Fatalf("%s: the sweep touched nothing", what)
		}
		for _, req := range touched {
			_, key, _ := strings.Cut(req, " ")
			ok := false
			for _, id := range mine {
				ok = ok || strings.HasPrefix(key, snapshot.ShardPrefix(id))
			}
			if !ok {
				t.Errorf("%s: the sweep asked %q, outside the prefixes of the shards this node holds (%v)", what, req, mine)
			}
		}
	}

	rep, err := sw.RunOnce(ctx)
	if err != nil || len(rep.Marked) != len(mine) {
		t.Fatalf("first sweep: %+v, %v; want the orphans of the %d shards held marked", rep, err, len(mine))
	}
	touchedOnlyMine("first sweep")
	clk.Advance(11 * time.Minute)
	rep, err = sw.RunOnce(ctx)
	if err != nil || rep.Count(KindUpload) != len(mine) {
		t.Fatalf("sweep past the delay: %+v, %v; want the orphans of the %d shards held deleted", rep, err, len(mine))
	}
	touchedOnlyMine("sweep past the delay")
	for _, id := range mine {
		if _, err := local.Stat(ctx, orphan[id]); !errors.Is(err, snapshot.ErrNotFound) {
			t.Errorf("orphan of %s, a shard held here: %v, want it deleted", id, err)
		}
	}
	for _, id := range theirs {
		if _, err := local.Stat(ctx, orphan[id]); err != nil {
			t.Errorf("orphan of %s, a shard held elsewhere: %v, want it left to its holders", id, err)
		}
	}

	// Unreachable: nothing deleted or marked, and one shard's failure ends
	// the sweep of the repository.
	putBlob(t, repo, snapshot.BlobPrefix(mine[0])+"orphan-2")
	putBlob(t, repo, snapshot.BlobPrefix(mine[1])+"orphan-2")
	clk.Advance(2 * time.Hour)
	repo.take()
	repo.down.Store(true)
	rep, err = sw.RunOnce(ctx)
	if !errors.Is(err, snapshot.ErrUnavailable) {
		t.Fatalf("unreachable repository: want an ErrUnavailable error, got %v", err)
	}
	if len(rep.Removed) != 0 || len(rep.Marked) != 0 {
		t.Fatalf("unreachable repository: %+v", rep)
	}
	for _, req := range repo.take() {
		if op, _, _ := strings.Cut(req, " "); op == "put" || op == "delete" {
			t.Errorf("unreachable repository: the sweep asked %q", req)
		}
		if strings.Contains(req, snapshot.ShardPrefix(mine[1])) {
			t.Errorf("unreachable repository: the sweep went on to the next shard: %q", req)
		}
	}
	if got := value(sw.metrics.failures.WithLabelValues(stepRepository)); got != 1 {
		t.Errorf("repository failures %v, want 1", got)
	}
	if !strings.Contains(strings.Join(rep.Skipped, "\n"), "1 more shards") {
		t.Errorf("the report does not say what was skipped: %q", rep.Skipped)
	}
}
