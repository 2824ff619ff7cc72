package snapshot

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recoverd/recoverd/internal/testutil"
)

// TestS3RepositoryUp: recoverd_s3_repository_up follows what a real MinIO
// answers: 1 while it answers (a missing key too), 0 while it is frozen
// (SIGSTOP: requests time out) or its bucket is gone, and 1 again once it
// answers; a request its caller cancelled changes nothing. Requests that
// found it unavailable are counted.
func TestS3RepositoryUp(t *testing.T) {
	m := testutil.StartMinIO(t)
	reg := prometheus.NewPedanticRegistry()
	metrics := NewRequestMetrics(reg)
	repo := newS3Repo(t, m, S3Options{Metrics: metrics, RequestTimeout: 500 * time.Millisecond, ReadIdleTimeout: 500 * time.Millisecond})
	state := func() (up, unavailable float64) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			switch mf.GetName() {
			case "recoverd_s3_repository_up":
				up = mf.GetMetric()[0].GetGauge().GetValue()
			case "recoverd_s3_unavailable_requests_total":
				unavailable = mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return up, unavailable
	}
	want := func(what string, up, unavailable float64) {
		t.Helper()
		if u, n := state(); u != up || n != unavailable {
			t.Fatalf("%s: up %v, unavailable requests %v; want %v and %v", what, u, n, up, unavailable)
		}
	}
	ctx := context.Background()
	want("before any request", 1, 0)
	if _, err := repo.Stat(ctx, "no/such/key"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	want("a missing key", 1, 0)

	m.Pause()
	if _, err := repo.List(ctx, ""); !errors.Is(err, ErrUnavailable) {
		m.Resume()
		t.Fatalf("list of a frozen store: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	repo.List(cctx, "") // cancelled by its caller before the deadline
	m.Resume()
	want("frozen", 0, 1)
	if _, err := repo.List(ctx, ""); err != nil {
		t.Fatal(err)
	}
	want("answering again", 1, 1)

	gone := newS3RepoIn(t, m, "no-such-bucket", "p", S3Options{Metrics: metrics})
	if _, err := gone.List(ctx, ""); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("list of a missing bucket: %v", err)
	}
	want("missing bucket", 0, 2)
}
