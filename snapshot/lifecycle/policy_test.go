package lifecycle

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/internal/testutil"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/snapshot"
)

func counted(n *node, result string) float64 {
	return promtest.ToFloat64(n.m.runs.WithLabelValues(result))
}

func failures(n *node, step, cause string) float64 {
	return promtest.ToFloat64(n.m.failures.WithLabelValues(step, cause))
}

func snapshotLease(t *testing.T, n *node) *seqno.RetentionLease {
	t.Helper()
	for _, l := range n.shard.Leases().List() {
		if l.ID == seqno.SnapshotLeaseID {
			return &l
		}
	}
	return nil
}

// TestPolicySnapshotsRetainsAndLeases: scheduled runs snapshot the shard,
// retention keeps the newest two after each, and the copy holds the
// snapshot retention lease from the latest snapshot's checkpoint + 1.
func TestPolicySnapshotsRetainsAndLeases(t *testing.T) {
	repo := localRepo(t)
	n := newNode(t, repo, 50)
	p, err := NewPolicy(n.svc, PolicyConfig{Interval: 30 * time.Millisecond, Keep: 2, Scope: ScopePrimaries, LeaseMaxOps: 1000, NodeID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	// Three rounds, each started once the one before has ended and its
	// next run is due.
	ctx := context.Background()
	for range 3 {
		eventually(t, "the next run due", func() bool {
			st := p.Status()
			return len(st) == 0 || !time.Now().Before(st[0].Next)
		})
		var wg sync.WaitGroup
		p.Tick(ctx, &wg)
		wg.Wait()
	}
	if got := counted(n, "success"); got != 3 {
		t.Fatalf("%v successful runs, want 3", got)
	}
	entries := list(t, repo)
	if len(entries) != 2 {
		t.Fatalf("%d snapshots kept, want the newest 2", len(entries))
	}
	latest := entries[1].Manifest
	st := p.Status()
	if len(st) != 1 || st[0].LatestID != latest.ID || st[0].Next.IsZero() || st[0].LastResult != "success" || !st[0].Primary {
		t.Fatalf("status %+v, want the latest snapshot %s and a next run", st, latest.ID)
	}
	l := snapshotLease(t, n)
	if l == nil || l.RetainingSeqNo != latest.Commit.LocalCheckpoint+1 || l.Holder != "n1" {
		t.Fatalf("snapshot retention lease %+v, want one from seqno %v held by n1", l, latest.Commit.LocalCheckpoint+1)
	}
	if promtest.ToFloat64(n.m.deleted) < 1 || promtest.ToFloat64(n.m.bytes.WithLabelValues("reused")) == 0 {
		t.Fatal("retention deleted nothing, or no file was reused")
	}
}

// TestPolicyLeaseStopsAtItsBound: writes past the bound move the lease up
// to the bound, and the status says why.
func TestPolicyLeaseStopsAtItsBound(t *testing.T) {
	repo := localRepo(t)
	n := newNode(t, repo, 20)
	p, err := NewPolicy(n.svc, PolicyConfig{Interval: time.Hour, Scope: ScopeAll, LeaseMaxOps: 10, NodeID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := n.svc.Create(ctx, testShard, TriggerAPI)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	p.Tick(ctx, &wg) // learns of the snapshot; the next run is an hour away
	wg.Wait()
	sh, err := n.eng.Shard(ctx, testShard)
	if err != nil {
		t.Fatal(err)
	}
	p.keepLease(ctx, testShard, sh, true)
	if l := snapshotLease(t, n); l == nil || l.RetainingSeqNo != c.Manifest.Commit.LocalCheckpoint+1 {
		t.Fatalf("lease %+v, want it from the snapshot's checkpoint + 1 = %v", l, c.Manifest.Commit.LocalCheckpoint+1)
	}
	n.write(t, 100) // 100 ops above the snapshot, the bound is 10
	p.keepLease(ctx, testShard, sh, true)
	top := n.shard.Stats().Seq.MaxSeqNo
	if l := snapshotLease(t, n); l == nil || l.RetainingSeqNo != top+1-10 {
		t.Fatalf("lease %+v, want it stopped at the bound: seqno %v", l, top+1-10)
	}
	if st := p.Status(); st[0].LeaseBound == "" {
		t.Fatal("the status does not say the lease stopped at its bound")
	}
}

// TestPolicyRepositoryDownDeletesNothing: with MinIO stopped (SIGSTOP) the
// runs fail, are counted by cause and tried again at the retry policy's
// pace (the interval is an hour) until its retries are spent, and nothing
// is deleted though retention asks to keep one.
func TestPolicyRepositoryDownDeletesNothing(t *testing.T) {
	m := testutil.StartMinIO(t)
	bucket := m.MakeBucket("policy")
	open := func(o snapshot.S3Options) *snapshot.S3Repository {
		o.Endpoint, o.AccessKey, o.SecretKey, o.DisableTLS, o.Getenv = m.Endpoint, m.AccessKey, m.SecretKey, true, func(string) string { return "" }
		r, err := snapshot.NewS3Repository(bucket, "repo", o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	// The node's repository gives up fast on a hung store; the test's own
	// (the same bucket) rides out a slow answer of a loaded machine.
	repo := open(snapshot.S3Options{RequestTimeout: time.Second, ReadIdleTimeout: time.Second, Retry: retry.Options{MaxElapsed: 400 * time.Millisecond}})
	patient := open(snapshot.S3Options{})
	n := newNode(t, repo, 50)
	ctx := context.Background()
	for range 2 {
		if _, err := snapshot.Create(ctx, patient, snapshot.StoreSource(n.shard), snapshot.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		n.write(t, 10)
	}
	p, err := NewPolicy(n.svc, PolicyConfig{Interval: time.Hour, Keep: 1, Scope: ScopePrimaries, LeaseMaxOps: 1000, NodeID: "n1",
		Retry: retry.Options{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond, MaxElapsed: time.Minute, MaxRetries: 2}})
	if err != nil {
		t.Fatal(err)
	}
	m.Pause()
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			m.Resume()
		}
	})
	stop := running(t, p)
	// The run and its two retries fail; then the shard waits for its next
	// scheduled run, an hour away.
	eventually(t, "three failed runs", func() bool { return counted(n, "failure") >= 3 })
	if next := p.Status()[0].Next; time.Until(next) < 30*time.Minute {
		t.Fatalf("next run at %v after the retries were spent, want the scheduled one, an hour away", next)
	}
	stop()
	// A tick now starts nothing: the shard waits for its scheduled run.
	var wg sync.WaitGroup
	p.Tick(context.Background(), &wg)
	wg.Wait()
	if got := counted(n, "failure"); got != 3 {
		t.Fatalf("%v failed runs, want 3: the first and two retries", got)
	}
	m.Resume()
	resumed = true
	if got := failures(n, "snapshot", CauseRepository); got < 3 {
		t.Fatalf("%v failures counted as repository_unavailable, want 3 or more; last error %s (%s)", got, p.Status()[0].LastError, Cause(errors.New(p.Status()[0].LastError)))
	}
	st := p.Status()[0]
	if st.Failures < 3 || st.LastError == "" || st.LastResult != "failure" {
		t.Fatalf("status %+v, want the failures in a row and the last error", st)
	}
	if entries := list(t, patient); len(entries) != 2 {
		t.Fatalf("%d snapshots left after failed runs, want both (nothing deleted)", len(entries))
	}
	if counted(n, "success") != 0 || promtest.ToFloat64(n.m.deleted) != 0 {
		t.Fatal("a run succeeded or retention ran while MinIO was stopped")
	}
}

// TestPolicyUnreadableManifestNoRetention: a manifest that does not decode
// stops retention whole: the run's snapshot lands, nothing is deleted, the
// retention failure is counted.
func TestPolicyUnreadableManifestNoRetention(t *testing.T) {
	repo := localRepo(t)
	n := newNode(t, repo, 50)
	ctx := context.Background()
	var first string
	for i := range 2 {
		c, err := n.svc.Create(ctx, testShard, TriggerAPI)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = c.Manifest.ID
		}
		n.write(t, 10)
	}
	key := filepath.Join(repo.Root(), filepath.FromSlash(snapshot.ManifestKey(testShard, first)))
	if err := os.WriteFile(key, []byte("{not a manifest"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := NewPolicy(n.svc, PolicyConfig{Interval: 50 * time.Millisecond, Keep: 1, Scope: ScopePrimaries, NodeID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, p)
	eventually(t, "a scheduled snapshot and a retention refused", func() bool {
		return counted(n, "success") >= 1 && failures(n, "retention", CauseUnreadable) >= 1
	})
	stop()
	entries, err := snapshot.List(ctx, repo, testShard)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 3 || entries[0].ID != first || entries[0].Err == nil {
		t.Fatalf("%d snapshots, first %s: retention deleted some while a manifest could not be read", len(entries), entries[0].ID)
	}
	if promtest.ToFloat64(n.m.deleted) != 0 {
		t.Fatal("retention counted deletions")
	}
}

func TestPolicyConfigRefusesNonsense(t *testing.T) {
	for _, c := range []PolicyConfig{
		{Interval: -time.Second, Scope: ScopeAll},
		{Interval: time.Hour, Jitter: 1.5, Scope: ScopeAll},
		{Interval: time.Hour, Scope: "replicas"},
		{Interval: time.Hour, MaxAge: time.Minute, Scope: ScopeAll},
		{Interval: time.Hour, Keep: -1, Scope: ScopeAll},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestLeaseFollowsTheLatestSnapshotOfItsHistory: a newer snapshot of the
// shard moves the lease up; one of another history (a copy that started a
// new one) cannot be continued by this copy's ops, and its lease goes.
func TestLeaseFollowsTheLatestSnapshotOfItsHistory(t *testing.T) {
	repo := localRepo(t)
	a := newNode(t, repo, 20)
	p, err := NewPolicy(a.svc, PolicyConfig{Interval: time.Hour, Scope: ScopeAll, LeaseMaxOps: 1000, NodeID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sh, err := a.eng.Shard(ctx, testShard)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, err := a.svc.Create(ctx, testShard, TriggerAPI)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		p.Tick(ctx, &wg)
		wg.Wait()
		p.landed(testShard, c.Manifest)
		p.keepLease(ctx, testShard, sh, true)
		if l := snapshotLease(t, a); l == nil || l.RetainingSeqNo != c.Manifest.Commit.LocalCheckpoint+1 {
			t.Fatalf("lease %+v, want it from seqno %v", l, c.Manifest.Commit.LocalCheckpoint+1)
		}
		a.write(t, 10)
	}
	b := newNode(t, repo, 5) // the same shard id, a history of its own
	c, err := b.svc.Create(ctx, testShard, TriggerAPI)
	if err != nil {
		t.Fatal(err)
	}
	p.landed(testShard, c.Manifest)
	p.keepLease(ctx, testShard, sh, true)
	if l := snapshotLease(t, a); l != nil {
		t.Fatalf("lease %+v kept for a snapshot of another history", l)
	}
}
