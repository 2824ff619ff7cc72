package snapshot

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/recoverd/recoverd/internal/testutil"
)

func TestRequestOp(t *testing.T) {
	for _, c := range []struct {
		method, url string
		want        RequestOp
	}{
		{"GET", "http://h/b/repo/k", OpGet},
		{"GET", "http://b.h/repo/k", OpGet},
		{"GET", "http://h/b/?list-type=2&prefix=repo%2F", OpList},
		{"GET", "http://h/b/?prefix=repo%2F&marker=x", OpList},
		{"GET", "http://h/b/?uploads&prefix=repo%2F", OpList},
		{"GET", "http://b.h/?versions", OpList},
		{"HEAD", "http://h/b/repo/k", OpHead},
		{"PUT", "http://h/b/repo/k", OpPut},
		{"POST", "http://h/b/repo/k?uploads", OpPut},
		{"PUT", "http://h/b/repo/k?partNumber=2&uploadId=u", OpPut},
		{"POST", "http://h/b/repo/k?uploadId=u", OpPut},
		{"DELETE", "http://h/b/repo/k?uploadId=u", OpDelete},
		{"DELETE", "http://h/b/repo/k", OpDelete},
		{"POST", "http://h/b/?delete", OpDelete},
	} {
		req, err := http.NewRequest(c.method, c.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := requestOp(req); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.method, c.url, got, c.want)
		}
	}
}

// TestS3RequestCounts: a snapshot, a recovery's reads and a deletion
// against a real MinIO are counted by type in the metric, under the kind
// of their context, and in the context's counter.
func TestS3RequestCounts(t *testing.T) {
	m := testutil.StartMinIO(t)
	reg := prometheus.NewPedanticRegistry()
	metrics := NewRequestMetrics(reg)
	repo := newS3Repo(t, m, S3Options{Metrics: metrics})
	series := func(op RequestOp, kind RequestKind) int64 {
		t.Helper()
		return int64(gatherRequests(t, reg)[string(op)+","+string(kind)])
	}
	// Every series exists from the start, at zero.
	if n := len(gatherRequests(t, reg)); n != len(RequestOps)*len(RequestKinds) {
		t.Fatalf("%d series before any request, want %d", n, len(RequestOps)*len(RequestKinds))
	}
	requireSeries := func(kind RequestKind, want RequestTally) {
		t.Helper()
		got := RequestTally{List: series(OpList, kind), Get: series(OpGet, kind), Put: series(OpPut, kind),
			Head: series(OpHead, kind), Delete: series(OpDelete, kind)}
		if got != want {
			t.Fatalf("metric for kind %s: %+v, want %+v", kind, got, want)
		}
	}

	// A snapshot: lists what the shard has, uploads every file, then the
	// manifest; reads and deletes nothing.
	src := newShard(t, t.TempDir(), testShard, 3, 100, 1000)
	var snap RequestCounter
	res, err := Create(CountRequests(ctxTimeout(t, time.Minute), KindSnapshot, &snap), repo, StoreSource(src), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	files := int64(len(res.Manifest.Files))
	st := snap.Tally()
	t.Logf("snapshot of %d files: %+v", files, st)
	if st.List < 1 || st.Put != files+1 || st.Get != 0 || st.Delete != 0 {
		t.Fatalf("snapshot requests %+v: want lists, %d puts (the files and the manifest), no get or delete", st, files+1)
	}
	requireSeries(KindSnapshot, st)

	// A recovery's reads: the latest manifest, then the files in parts.
	var rec RequestCounter
	ctx := CountRequests(ctxTimeout(t, time.Minute), KindRecovery, &rec)
	man, err := Latest(ctx, repo, testShard)
	if err != nil {
		t.Fatal(err)
	}
	tgt := newShard(t, t.TempDir(), testShard, 0, 0, 0)
	staging, err := startStage(tgt, "rec-counts")
	if err != nil {
		t.Fatal(err)
	}
	d := &Downloader{PartSize: 32 << 10}
	if err := d.Download(ctx, repo, man.Files, staging.Area); err != nil {
		t.Fatal(err)
	}
	var parts int64
	for _, f := range man.Files {
		parts += (f.Length + d.PartSize - 1) / d.PartSize
	}
	rt := rec.Tally()
	t.Logf("recovery of %d files in %d parts: %+v", files, parts, rt)
	if rt.List < 1 || rt.Get != parts+1 || rt.Head > files || rt.Put != 0 || rt.Delete != 0 {
		t.Fatalf("recovery requests %+v: want lists, %d gets (the manifest and %d parts), at most a head per file, no put or delete", rt, parts+1, parts)
	}
	requireSeries(KindRecovery, rt)
	requireSeries(KindSnapshot, st) // unchanged

	// A deletion under the cleanup kind: the manifest goes, its blobs are
	// marked for deletion.
	var del RequestCounter
	if _, err := Delete(CountRequests(ctxTimeout(t, time.Minute), KindCleanup, &del), repo, testShard, man.ID, DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	dt := del.Tally()
	t.Logf("deletion of a snapshot of %d files: %+v", files, dt)
	if dt.Delete < 1 {
		t.Fatalf("deletion requests %+v: want the manifest deleted", dt)
	}
	requireSeries(KindCleanup, dt)
	// An untagged request is "other".
	if _, err := repo.Stat(context.Background(), "no/such/key"); err == nil {
		t.Fatal("stat of a missing key succeeded")
	}
	requireSeries(KindOther, RequestTally{Head: 1})

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// gatherRequests returns the series of recoverd_s3_requests_total in reg,
// keyed "op,kind".
func gatherRequests(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "recoverd_s3_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out[l["op"]+","+l["kind"]] = m.GetCounter().GetValue()
		}
	}
	return out
}
