package snapshot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/internal/testutil"
)

// Fault tests: a real MinIO that is killed, stopped or paused (SIGSTOP)
// while we use it. Each test has its own server.

// faultOptions are short deadlines so faults show within seconds.
var faultOptions = S3Options{
	RequestTimeout:  time.Second,
	ReadIdleTimeout: time.Second,
	DialTimeout:     time.Second,
	Retry:           retry.Options{Initial: 50 * time.Millisecond, Max: 300 * time.Millisecond, MaxElapsed: 2 * time.Second},
}

// midway returns a throttle hook that slows the download a little per
// chunk and runs fault once, when a third of total bytes has gone by.
func midway(total int64, fault func()) (func(context.Context, int) error, *atomic.Bool) {
	var seen atomic.Int64
	var once sync.Once
	fired := new(atomic.Bool)
	return func(ctx context.Context, n int) error {
		if seen.Add(int64(n)) > total/3 {
			once.Do(func() {
				fault()
				fired.Store(true)
			})
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
			return nil
		}
	}, fired
}

func checkFailedDownload(t *testing.T, err error, fx *snapshotFixture, elapsed, limit time.Duration) {
	t.Helper()
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrChecksum) {
		t.Fatalf("download error %v, want ErrUnavailable", err)
	}
	named := false
	for _, f := range fx.m.Files {
		named = named || strings.Contains(err.Error(), f.Name)
	}
	if !named {
		t.Fatalf("error names no file: %v", err)
	}
	if elapsed > limit {
		t.Fatalf("download failed after %v, budget %v", elapsed, limit)
	}
	if names := stagedNames(t, fx.st); len(names) != 0 {
		t.Fatalf("staged files left: %q", names)
	}
	t.Logf("failed after %v: %v", elapsed.Round(time.Millisecond), err)
}

func TestS3KilledMidDownload(t *testing.T) {
	m := testutil.StartMinIO(t)
	repo := newS3Repo(t, m, faultOptions)
	fx := newFixture(t, repo, 4, 100, 10000)
	throttle, fired := midway(fx.m.TotalBytes(), m.Kill)
	d := &Downloader{PartSize: 128 << 10, PartConcurrency: 2, Throttle: throttle, Retry: retry.Options{Max: 300 * time.Millisecond, MaxElapsed: 2 * time.Second}}
	start := time.Now()
	err := d.Download(ctxTimeout(t, time.Minute), repo, fx.m.Files, fx.st.Area)
	if !fired.Load() {
		t.Fatalf("the kill did not land mid-download: %v", err)
	}
	checkFailedDownload(t, err, fx, time.Since(start), 15*time.Second)
	if !strings.Contains(err.Error(), "gave up after") {
		t.Fatalf("error does not say the retries ran out: %v", err)
	}
}

func TestS3RestartedMidDownloadResumes(t *testing.T) {
	m := testutil.StartMinIO(t)
	repo := newS3Repo(t, m, faultOptions)
	fx := newFixture(t, repo, 4, 100, 10000)
	throttle, fired := midway(fx.m.TotalBytes(), func() {
		m.Kill()
		time.Sleep(300 * time.Millisecond)
		m.Restart()
	})
	var written atomic.Int64
	d := &Downloader{
		PartSize: 128 << 10, PartConcurrency: 2, Retry: retry.Options{Max: 300 * time.Millisecond, MaxElapsed: 20 * time.Second},
		Throttle: throttle, OnBytes: func(_ string, n int64) { written.Add(n) },
	}
	if err := d.Download(ctxTimeout(t, time.Minute), repo, fx.m.Files, fx.st.Area); err != nil {
		t.Fatalf("download across a restart: %v", err)
	}
	if !fired.Load() || d.Stats().Retries == 0 {
		t.Fatalf("no fault hit the download (retries %d)", d.Stats().Retries)
	}
	// Resumed parts do not fetch bytes twice.
	if written.Load() != fx.m.TotalBytes() {
		t.Fatalf("%d bytes written for %d", written.Load(), fx.m.TotalBytes())
	}
	if err := fx.st.Publish(fx.m.FileMetas(), fx.m.Commit); err != nil {
		t.Fatal(err)
	}
	if digest(t, fx.tgt) != digest(t, fx.src) {
		t.Fatal("shard restored across a restart differs")
	}
}

func TestS3Stopped(t *testing.T) {
	m := testutil.StartMinIO(t)
	repo := newS3Repo(t, m, faultOptions)
	fx := newFixture(t, repo, 2, 50, 2000)
	m.Stop()
	ctx := ctxTimeout(t, time.Minute)

	start := time.Now()
	_, err := Latest(ctx, repo, testShard)
	checkUnavailable(t, "latest with MinIO stopped", err)
	_, err = List(ctx, repo, testShard)
	checkUnavailable(t, "list with MinIO stopped", err)
	_, err = GC(ctx, repo, testShard, 0, DeleteOptions{})
	checkUnavailable(t, "gc with MinIO stopped", err)
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("queries took %v with a 2s retry budget", d)
	}

	d := &Downloader{Retry: retry.Options{Max: 300 * time.Millisecond, MaxElapsed: 2 * time.Second}}
	start = time.Now()
	err = d.Download(ctx, repo, fx.m.Files, fx.st.Area)
	checkFailedDownload(t, err, fx, time.Since(start), 10*time.Second)

	// Back up: everything is still there.
	m.Restart()
	if err := d.Download(ctx, repo, fx.m.Files, fx.st.Area); err != nil {
		t.Fatalf("download after restart: %v", err)
	}
	if got, err := GC(ctx, repo, testShard, 1, DeleteOptions{}); err != nil || len(got.Kept) != 1 {
		t.Fatalf("gc after restart = %+v, %v", got, err)
	}
}

func TestS3Paused(t *testing.T) {
	m := testutil.StartMinIO(t)
	repo := newS3Repo(t, m, faultOptions)
	fx := newFixture(t, repo, 4, 100, 10000)

	t.Run("MidDownload", func(t *testing.T) {
		throttle, fired := midway(fx.m.TotalBytes(), m.Pause)
		defer func() {
			if fired.Load() {
				m.Resume()
			}
		}()
		d := &Downloader{PartSize: 128 << 10, PartConcurrency: 2, Throttle: throttle, Retry: retry.Options{Max: 300 * time.Millisecond, MaxElapsed: 2 * time.Second}}
		start := time.Now()
		err := d.Download(ctxTimeout(t, time.Minute), repo, fx.m.Files, fx.st.Area)
		if !fired.Load() {
			t.Fatalf("the pause did not land mid-download: %v", err)
		}
		checkFailedDownload(t, err, fx, time.Since(start), 20*time.Second)
	})

	t.Run("Queries", func(t *testing.T) {
		m.Pause()
		defer m.Resume()
		ctx := ctxTimeout(t, time.Minute)
		start := time.Now()
		_, err := Latest(ctx, repo, testShard)
		checkUnavailable(t, "latest with MinIO paused", err)
		s := newShard(t, t.TempDir(), testShard, 1, 10, 100)
		_, err = Create(ctx, repo, StoreSource(s), CreateOptions{})
		checkUnavailable(t, "create with MinIO paused", err)
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("calls to a paused server took %v", d)
		}
	})

	// A store that does not answer (paused here; a distributed MinIO
	// without quorum does the same) is named as such, once, without the
	// request's URL: the error already names the operation and the key.
	t.Run("Wording", func(t *testing.T) {
		m.Pause()
		defer m.Resume()
		ctx := ctxTimeout(t, time.Minute)
		_, serr := repo.Stat(ctx, "some/key")
		perr := repo.Put(ctx, "some/key", strings.NewReader("v"), 1)
		_, gerr := repo.Get(ctx, fx.m.Files[0].Blob)
		for what, err := range map[string]error{"stat": serr, "put": perr, "get": gerr} {
			msg := fmt.Sprint(err)
			t.Logf("%s: %s", what, msg)
			if !errors.Is(err, ErrUnavailable) || !retry.IsTransient(err) || !errors.Is(err, errRequestTimeout) ||
				strings.Count(msg, "no answer within ") != 1 || !strings.Contains(msg, "lost its quorum") || strings.Contains(msg, "http://") {
				t.Fatalf("%s with the store paused: %q; want one transient ErrUnavailable saying it got no answer within the deadline, and why that may be, without the URL", what, msg)
			}
		}
	})

	t.Run("CancelWhilePaused", func(t *testing.T) {
		m.Pause()
		defer m.Resume()
		ctx, cancel := context.WithCancel(context.Background())
		d := &Downloader{Retry: retry.Options{MaxElapsed: time.Minute}}
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		err := d.Download(ctx, repo, fx.m.Files, fx.st.Area)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancel while the server hangs: %v", err)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Fatalf("cancel took %v to return", el)
		}
		if names := stagedNames(t, fx.st); len(names) != 0 {
			t.Fatalf("staged files left: %q", names)
		}
	})

	t.Run("AfterResume", func(t *testing.T) {
		d := &Downloader{}
		if err := d.Download(ctxTimeout(t, time.Minute), repo, fx.m.Files, fx.st.Area); err != nil {
			t.Fatalf("download after resume: %v", err)
		}
	})
}

// TestS3Throttled runs against a MinIO that admits one request at a time
// and answers the others 429 TooManyRequests at once: uploads and
// downloads retry them and succeed.
func TestS3Throttled(t *testing.T) {
	m := testutil.StartMinIOWith(t, testutil.MinIOOptions{Env: []string{"MINIO_API_REQUESTS_MAX=1"}})
	repo := newS3Repo(t, m, S3Options{Retry: retry.Options{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, MaxElapsed: 30 * time.Second}})
	ctx := ctxTimeout(t, time.Minute)
	src := newShard(t, t.TempDir(), testShard, 6, 50, 2000)
	res, err := Create(ctx, repo, StoreSource(src), CreateOptions{Concurrency: 6})
	if err != nil {
		t.Fatalf("create under throttling: %v", err)
	}
	tgt := newShard(t, t.TempDir(), testShard, 0, 0, 0)
	st, err := startStage(tgt, "throttled")
	if err != nil {
		t.Fatal(err)
	}
	d := &Downloader{PartSize: 16 << 10, PartConcurrency: 4, FileConcurrency: 4, Retry: retry.Options{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond}}
	if err := d.Download(ctx, repo, res.Manifest.Files, st.Area); err != nil {
		t.Fatalf("download under throttling: %v", err)
	}
	if d.Stats().Retries == 0 {
		t.Fatal("no request was refused: the server did not throttle")
	}
	t.Logf("download retried %d times", d.Stats().Retries)
	if err := st.Publish(res.Manifest.FileMetas(), res.Manifest.Commit); err != nil {
		t.Fatal(err)
	}
	if digest(t, tgt) != digest(t, src) {
		t.Fatal("restored shard differs")
	}
}
