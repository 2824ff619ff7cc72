package cleanup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/internal/staging"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ctx = context.Background()

// clock is a settable clock for leases and grace periods.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// engines holds the in-process engine of each data directory a test
// opens shards in, and the engine of each shard.
var engines sync.Map // dir or *shardstore.Shard -> *embedded.Engine

// engineFor returns the engine of dir, opened on first use with clk as
// its clock (nil: time.Now), as recoverd opens it.
func engineFor(t *testing.T, dir string, clk *clock) *embedded.Engine {
	t.Helper()
	if e, ok := engines.Load(dir); ok {
		return e.(*embedded.Engine)
	}
	opts := shardstore.Options{LeaseTTL: time.Minute, KeepStaging: true}
	if clk != nil {
		opts.Now = clk.Now
	}
	e := embedded.New(embedded.NewRegistry(dir, opts, slog.New(slog.DiscardHandler)))
	engines.Store(dir, e)
	t.Cleanup(func() { e.Close(); engines.Delete(dir) })
	return e
}

// createShard creates an empty shard in dir's engine.
func createShard(t *testing.T, dir string, id shardstore.ShardID, clk *clock) *shardstore.Shard {
	t.Helper()
	e := engineFor(t, dir, clk)
	s, err := e.Registry().Create(id, false)
	if err != nil {
		t.Fatal(err)
	}
	engines.Store(s, e)
	t.Cleanup(func() { engines.Delete(s) })
	return s
}

// shardSet is the engine a sweep sees: the shards given, each served by
// the engine that holds it.
type shardSet struct {
	engine.Engine // not called by a sweep
	shards        []*shardstore.Shard
}

func shardsOf(shards ...*shardstore.Shard) *shardSet { return &shardSet{shards: shards} }

func (s *shardSet) engineOf(sh *shardstore.Shard) *embedded.Engine {
	e, _ := engines.Load(sh)
	return e.(*embedded.Engine)
}

func (s *shardSet) Shards(context.Context) ([]engine.ShardStatus, error) {
	var out []engine.ShardStatus
	for _, sh := range s.shards {
		out = append(out, engine.ShardStatus{ID: sh.ID(), State: engine.StateOpen})
	}
	return out, nil
}

func (s *shardSet) Shard(ctx context.Context, id engine.ShardID) (engine.Shard, error) {
	for _, sh := range s.shards {
		if sh.ID() == id {
			return s.engineOf(sh).Shard(ctx, id)
		}
	}
	return nil, fmt.Errorf("%w: %s", engine.ErrNotFound, id)
}

func (s *shardSet) SweepUncommitted(ctx context.Context, keep map[engine.ShardID]bool) ([]engine.ShardID, error) {
	var out []engine.ShardID
	seen := map[*embedded.Engine]bool{}
	for _, sh := range s.shards {
		if e := s.engineOf(sh); !seen[e] {
			seen[e] = true
			ids, err := e.SweepUncommitted(ctx, keep)
			if out = append(out, ids...); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// openShard creates a shard under dir with docs documents in one segment.
func openShard(t *testing.T, dir string, id shardstore.ShardID, docs int, clk *clock) *shardstore.Shard {
	t.Helper()
	s := createShard(t, dir, id, clk)
	batch := make([]shardstore.Doc, docs)
	for i := range batch {
		batch[i] = shardstore.Doc{Key: fmt.Sprintf("%s-doc-%05d", id.Index, i), Value: bytes.Repeat([]byte{byte(i)}, 200)}
	}
	if _, err := s.IndexBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	return s
}

func mustDigest(t *testing.T, s *shardstore.Shard) string {
	t.Helper()
	d, err := s.Digest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func exists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Stat(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func newSweeper(t *testing.T, cfg Config) (*Sweeper, *prometheus.Registry, *syncBuffer) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	logs := &syncBuffer{}
	cfg.Registerer = reg
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg, logs
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		panic(err)
	}
	if out.Counter != nil {
		return out.Counter.GetValue()
	}
	return out.Gauge.GetValue()
}

func removals(t *testing.T, s *Sweeper, k Kind) int {
	t.Helper()
	return int(value(s.metrics.removals.WithLabelValues(string(k))))
}

// checkLoggedAndCounted: every removal in the report has a log line, and
// the counters add up.
func checkLoggedAndCounted(t *testing.T, s *Sweeper, rep Report, logs *syncBuffer, before map[Kind]int) {
	t.Helper()
	for _, r := range rep.Removed {
		if !strings.Contains(logs.String(), "name="+r.Name) && !strings.Contains(logs.String(), fmt.Sprintf("name=%q", r.Name)) {
			t.Errorf("removal %+v not logged", r)
		}
	}
	if n := strings.Count(logs.String(), `msg="cleanup removed"`); n < len(rep.Removed) {
		t.Errorf("%d removal lines logged for %d removals", n, len(rep.Removed))
	}
	for _, k := range Kinds {
		if got, want := removals(t, s, k)-before[k], rep.Count(k); got != want {
			t.Errorf("recoverd_cleanup_removals_total{kind=%q} grew by %d, report says %d", k, got, want)
		}
	}
}

func TestRunOnceRemovesLeftoversAndNothingElse(t *testing.T) {
	data := t.TempDir()
	clk := newClock()
	a := openShard(t, data, shardstore.ShardID{Index: "logs", Shard: 0}, 300, clk)
	b := openShard(t, data, shardstore.ShardID{Index: "metrics", Shard: 1}, 200, clk)

	// a: a pinned commit replaced by a merge; its files must survive.
	ref, err := a.AcquireCommit()
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Release()
	if _, err := a.Index(ctx, "extra", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := a.Merge(); err != nil {
		t.Fatal(err)
	}
	// a: a running recovery's staging (named by the manager, not open
	// here: e.g. between a failed attempt and the next), and a dead one.
	for _, id := range []string{"r-running", "r-dead"} {
		p := filepath.Join(a.Path(), "staging", id)
		os.MkdirAll(p, 0o755)
		os.WriteFile(filepath.Join(p, "seg_00000001_aaaa"), []byte("partial"), 0o644)
	}
	// b: an old temp file, a young one (a write in progress), an orphan
	// segment, a file nobody knows.
	old := time.Now().Add(-time.Hour)
	os.WriteFile(filepath.Join(b.Path(), ".tmp-commit_7-1"), []byte("half"), 0o644)
	os.Chtimes(filepath.Join(b.Path(), ".tmp-commit_7-1"), old, old)
	os.WriteFile(filepath.Join(b.Path(), ".tmp-leases-2"), []byte("young"), 0o644)
	os.WriteFile(filepath.Join(b.Path(), "seg_99999999_orphan"), []byte("orphan"), 0o644)
	os.WriteFile(filepath.Join(b.Path(), "NOTES"), []byte("operator's"), 0o644)
	// Leases: one renewed, one left to expire.
	for _, id := range []string{"peer-n2", "peer-n3"} {
		if _, err := b.Leases().Add(id, b.Leases().Floor(), "n"); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(45 * time.Second)
	if _, err := b.Leases().Renew("peer-n2", b.Leases().Floor()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Second)

	wantA, wantB := mustDigest(t, a), mustDigest(t, b)
	sw, reg, logs := newSweeper(t, Config{
		Engine:  shardsOf(a, b),
		Running: func() map[shardstore.ShardID]string { return map[shardstore.ShardID]string{a.ID(): "r-running"} },
	})
	before := map[Kind]int{}
	rep, err := sw.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkLoggedAndCounted(t, sw, rep, logs, before)
	for k, want := range map[Kind]int{KindStaging: 1, KindTemp: 1, KindUnreferenced: 1, KindLease: 1} {
		if got := rep.Count(k); got != want {
			t.Errorf("%s removals %d, want %d: %+v", k, got, want, rep.Removed)
		}
	}
	for _, p := range []string{filepath.Join(a.Path(), "staging", "r-dead"), filepath.Join(b.Path(), ".tmp-commit_7-1"), filepath.Join(b.Path(), "seg_99999999_orphan")} {
		if exists(t, p) {
			t.Errorf("%s survived", p)
		}
	}
	for _, p := range []string{filepath.Join(a.Path(), "staging", "r-running", "seg_00000001_aaaa"), filepath.Join(b.Path(), ".tmp-leases-2"), filepath.Join(b.Path(), "NOTES")} {
		if !exists(t, p) {
			t.Errorf("%s removed", p)
		}
	}
	for _, fm := range append(ref.Metadata().Files, a.Metadata().Files...) {
		if !exists(t, filepath.Join(a.Path(), fm.Name)) {
			t.Errorf("pinned or current file %s removed", fm.Name)
		}
	}
	for _, fm := range b.Metadata().Files {
		if !exists(t, filepath.Join(b.Path(), fm.Name)) {
			t.Errorf("current file %s removed", fm.Name)
		}
	}
	if ls := b.Leases().List(); len(ls) != 1 || ls[0].ID != "peer-n2" {
		t.Errorf("leases after cleanup: %+v", ls)
	}
	if mustDigest(t, a) != wantA || mustDigest(t, b) != wantB {
		t.Fatal("shard content changed")
	}
	if n := value(sw.metrics.runs); n != 1 {
		t.Errorf("runs %v", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if problems, err := promlint.NewWithMetricFamilies(mfs).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}

	// A second sweep finds nothing; the running recovery is over and its
	// staging goes at the third.
	rep, err = sw.RunOnce(ctx)
	if err != nil || len(rep.Removed) != 0 {
		t.Fatalf("second sweep: %+v %v", rep, err)
	}
	sw2, _, _ := newSweeper(t, Config{Engine: shardsOf(a)})
	rep2, err := sw2.RunOnce(ctx)
	if err != nil || rep2.Count(KindStaging) != 1 || rep2.Removed[0].Name != "r-running" {
		t.Fatalf("after the recovery ended: %+v %v", rep2, err)
	}
}

// A sweep running again and again while a recovery stages a file (a
// goroutine writing chunks, as a transfer does) never removes it, and the
// staging publishes.
func TestCleanupRacingRunningStaging(t *testing.T) {
	srcData, dstData := t.TempDir(), t.TempDir()
	clk := newClock()
	id := shardstore.ShardID{Index: "logs", Shard: 0}
	src := openShard(t, srcData, id, 3000, clk)
	dst := createShard(t, dstData, id, nil)

	var running sync.Map // what the manager would report
	sw, _, logs := newSweeper(t, Config{
		Engine: shardsOf(dst),
		Running: func() map[shardstore.ShardID]string {
			out := map[shardstore.ShardID]string{}
			running.Range(func(k, v any) bool { out[k.(shardstore.ShardID)] = v.(string); return true })
			return out
		},
	})
	cctx, cancel := context.WithCancel(ctx)
	var sweeps atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for cctx.Err() == nil {
			if _, err := sw.RunOnce(cctx); err != nil && cctx.Err() == nil {
				t.Errorf("sweep: %v", err)
				return
			}
			sweeps.Add(1)
		}
	}()

	for attempt := range 5 {
		rid := fmt.Sprintf("r-%d", attempt)
		if attempt%2 == 1 {
			running.Store(id, rid) // registered with the manager or not: both are safe
		}
		st, err := dst.StartStaging(rid)
		if err != nil {
			t.Fatal(err)
		}
		area, err := staging.Open(rid, st.Dir(), staging.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ref, err := src.AcquireCommit()
		if err != nil {
			t.Fatal(err)
		}
		var files []shardstore.FileMeta
		for _, fm := range ref.Metadata().Files {
			f, _, err := ref.Open(fm.Name)
			if err != nil {
				t.Fatal(err)
			}
			sf, err := area.CreateFile(fm)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 512)
			var off int64
			for {
				n, rerr := f.ReadAt(buf, off)
				if n > 0 {
					if _, err := sf.WriteAt(buf[:n], off); err != nil {
						t.Fatal(err)
					}
					off += int64(n)
					if off%(16<<10) == 0 {
						time.Sleep(time.Millisecond) // let sweeps interleave
					}
				}
				if rerr == io.EOF {
					break
				}
				if rerr != nil {
					t.Fatal(rerr)
				}
			}
			f.Close()
			if err := sf.Verify(); err != nil {
				t.Fatalf("staged file damaged while cleanup ran: %v", err)
			}
			sf.Close()
			files = append(files, fm)
		}
		md := ref.Metadata()
		ref.Release()
		if err := area.Sync(files); err != nil {
			t.Fatal(err)
		}
		if err := st.Publish(files, md.Commit); err != nil {
			t.Fatalf("publish after concurrent cleanup: %v", err)
		}
		running.Delete(id)
	}
	cancel()
	<-done
	if sweeps.Load() < 2 {
		t.Fatalf("only %d sweeps ran", sweeps.Load())
	}
	if strings.Contains(logs.String(), "kind=staging") {
		t.Fatalf("cleanup removed a staging directory:\n%s", logs.String())
	}
	if mustDigest(t, dst) != mustDigest(t, src) {
		t.Fatal("recovered copy differs from its source")
	}
}

// flakyRepo is a local repository that can be made unreachable; it counts
// deletes.
type flakyRepo struct {
	snapshot.Repository
	down    atomic.Bool
	deletes atomic.Int64
}

var errDown = fmt.Errorf("%w: connection refused (test)", snapshot.ErrUnavailable)

func (r *flakyRepo) RetryPolicy() retry.Options { return retry.Options{MaxElapsed: -1} }

func (r *flakyRepo) List(ctx context.Context, prefix string) ([]string, error) {
	if r.down.Load() {
		return nil, errDown
	}
	return r.Repository.List(ctx, prefix)
}

func (r *flakyRepo) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if r.down.Load() {
		return nil, errDown
	}
	return r.Repository.Get(ctx, key)
}

func (r *flakyRepo) Stat(ctx context.Context, key string) (snapshot.ObjectInfo, error) {
	if r.down.Load() {
		return snapshot.ObjectInfo{}, errDown
	}
	return r.Repository.Stat(ctx, key)
}

func (r *flakyRepo) Delete(ctx context.Context, key string) error {
	r.deletes.Add(1)
	return r.Repository.Delete(ctx, key)
}

func putBlob(t *testing.T, repo snapshot.Repository, key string) {
	t.Helper()
	if err := repo.Put(ctx, key, strings.NewReader("orphan blob"), 11); err != nil {
		t.Fatal(err)
	}
}

func TestUnfinishedUploadsOnlyAfterGraceAndNeverWhenUnreadable(t *testing.T) {
	clk := newClock()
	id := shardstore.ShardID{Index: "logs", Shard: 0}
	sh := openShard(t, t.TempDir(), id, 500, clk)
	local, err := snapshot.NewLocalRepository(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo := &flakyRepo{Repository: local}
	res, err := snapshot.Create(ctx, repo, snapshot.StoreSource(sh), snapshot.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// What interrupted uploads leave: blobs without a manifest, for both
	// shards this node holds.
	other := shardstore.ShardID{Index: "metrics", Shard: 2}
	osh := openShard(t, t.TempDir(), other, 100, clk)
	orphans := []string{snapshot.BlobPrefix(id) + "orphan-1", snapshot.BlobPrefix(other) + "orphan-2"}
	for _, k := range orphans {
		putBlob(t, repo, k)
	}
	var uploading atomic.Bool
	sw, _, logs := newSweeper(t, Config{
		Engine: shardsOf(sh, osh), Repo: repo, UploadGrace: time.Hour, Now: clk.Now,
		Uploading: func(s shardstore.ShardID) bool { return uploading.Load() && s == id },
	})

	// Within the grace: kept.
	rep, err := sw.RunOnce(ctx)
	if err != nil || rep.Count(KindUpload) != 0 || repo.deletes.Load() != 0 {
		t.Fatalf("within the grace: %+v %v, %d deletes", rep, err, repo.deletes.Load())
	}

	// Past the grace but the repository is unreachable: nothing deleted.
	clk.Advance(2 * time.Hour)
	repo.down.Store(true)
	rep, err = sw.RunOnce(ctx)
	if err == nil || !errors.Is(err, snapshot.ErrUnavailable) {
		t.Fatalf("unreachable repository: want an ErrUnavailable error, got %v", err)
	}
	if repo.deletes.Load() != 0 || rep.Count(KindUpload) != 0 || len(rep.Skipped) == 0 {
		t.Fatalf("unreachable repository: %d deletes, report %+v", repo.deletes.Load(), rep)
	}
	if got := value(sw.metrics.failures.WithLabelValues(stepRepository)); got != 1 {
		t.Errorf("repository failures %v, want 1", got)
	}
	repo.down.Store(false)

	// A manifest that cannot be read: that shard is skipped whole, the
	// other shard's orphan still goes.
	bad := snapshot.ManifestKey(id, snapshot.NewSnapshotID(time.Unix(1e9, 0)))
	if err := repo.Put(ctx, bad, strings.NewReader("not a manifest"), 14); err != nil {
		t.Fatal(err)
	}
	rep, err = sw.RunOnce(ctx)
	if err == nil {
		t.Fatal("a corrupt manifest did not fail the shard's sweep")
	}
	if rep.Count(KindUpload) != 1 || rep.Removed[0].Name != orphans[1] {
		t.Fatalf("with a corrupt manifest: %+v", rep.Removed)
	}
	if !exists(t, filepath.Join(local.Root(), filepath.FromSlash(orphans[0]))) {
		t.Fatal("orphan of a shard with an unreadable manifest deleted")
	}
	if err := repo.Repository.Delete(ctx, bad); err != nil {
		t.Fatal(err)
	}

	// An upload of the shard in progress here: skipped.
	uploading.Store(true)
	rep, err = sw.RunOnce(ctx)
	if err != nil || rep.Count(KindUpload) != 0 {
		t.Fatalf("while uploading: %+v %v", rep, err)
	}
	uploading.Store(false)

	// Readable and past the grace: the orphan goes, the snapshot stays.
	rep, err = sw.RunOnce(ctx)
	if err != nil || rep.Count(KindUpload) != 1 || rep.Removed[0].Name != orphans[0] {
		t.Fatalf("past the grace: %+v %v", rep, err)
	}
	if !strings.Contains(logs.String(), orphans[0]) {
		t.Error("removal not logged")
	}
	m, err := snapshot.Latest(ctx, repo, id)
	if err != nil || m.ID != res.Manifest.ID {
		t.Fatalf("snapshot after cleanup: %v %v", m, err)
	}
	for _, f := range m.Files {
		if _, err := repo.Stat(ctx, f.Blob); err != nil {
			t.Fatalf("referenced blob %s: %v", f.Blob, err)
		}
	}
	if got := removals(t, sw, KindUpload); got != 2 {
		t.Errorf("upload removals counted %d, want 2", got)
	}
}

func TestLocalRepositoryTempsAfterGrace(t *testing.T) {
	clk := newClock()
	local, err := snapshot.NewLocalRepository(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(local.Root(), "logs", "0", "blobs", ".tmp-x-1")
	os.MkdirAll(filepath.Dir(tmp), 0o755)
	os.WriteFile(tmp, []byte("half a put"), 0o644)
	sw, _, _ := newSweeper(t, Config{Engine: shardsOf(), Repo: local, UploadGrace: time.Hour, Now: clk.Now})
	if rep, err := sw.RunOnce(ctx); err != nil || rep.Count(KindRepoTemp) != 0 {
		t.Fatalf("young temp: %+v %v", rep, err)
	}
	clk.Advance(2 * time.Hour)
	if rep, err := sw.RunOnce(ctx); err != nil || rep.Count(KindRepoTemp) != 1 {
		t.Fatalf("old temp: %+v %v", rep, err)
	}
	if exists(t, tmp) {
		t.Fatal("temp file survived")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	local, err := snapshot.NewLocalRepository(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Config{
		{},
		{Engine: shardsOf(), Repo: local},
		{Engine: shardsOf(), Repo: local, UploadGrace: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// Run sweeps at start and then periodically, and stops with its context.
func TestRunPeriodically(t *testing.T) {
	clk := newClock()
	sh := openShard(t, t.TempDir(), shardstore.ShardID{Index: "logs", Shard: 0}, 10, clk)
	sw, _, _ := newSweeper(t, Config{Engine: shardsOf(sh)})
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { sw.Run(cctx, 10*time.Millisecond); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for value(sw.metrics.runs) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not sweep periodically")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	// Interval 0: once, then return.
	sw2, _, _ := newSweeper(t, Config{Engine: shardsOf(sh)})
	sw2.Run(ctx, 0)
	if n := value(sw2.metrics.runs); n != 1 {
		t.Fatalf("Run with interval 0 swept %v times", n)
	}
}

// TestSweepRemovesCopiesWithoutACommit: a copy a recovery created and
// never published (recoverd stopped before it could remove it) goes at
// the next sweep, unless a running recovery writes into it.
func TestSweepRemovesCopiesWithoutACommit(t *testing.T) {
	data, clk := t.TempDir(), newClock()
	held := openShard(t, data, shardstore.ShardID{Index: "logs", Shard: 0}, 10, clk)
	left, resumed := shardstore.ShardID{Index: "logs", Shard: 1}, shardstore.ShardID{Index: "logs", Shard: 2}
	for _, id := range []shardstore.ShardID{left, resumed} {
		s, err := shardstore.Open(data, id, shardstore.Options{Create: true, Uncommitted: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	sw, _, logs := newSweeper(t, Config{Engine: shardsOf(held),
		Running: func() map[shardstore.ShardID]string { return map[shardstore.ShardID]string{resumed: "r-resumed"} }})
	rep, err := sw.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkLoggedAndCounted(t, sw, rep, logs, map[Kind]int{})
	if rep.Count(KindUncommitted) != 1 || rep.Removed[0].Shard != left {
		t.Fatalf("removed %+v, want only the copy without a commit of %s", rep.Removed, left)
	}
	if exists(t, shardstore.Dir(data, left)) || !exists(t, shardstore.Dir(data, resumed)) || !exists(t, held.Path()) {
		t.Fatal("the sweep removed the wrong copies")
	}
}
