package lifecycle

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recoverd/recoverd/shardstore"
)

// TestJitterSpreadsRuns: each run moves by up to ±jitter/2 of the interval.
func TestJitterSpreadsRuns(t *testing.T) {
	for _, c := range []struct {
		r    float64
		want time.Duration
	}{{0, 90 * time.Minute}, {0.5, 100 * time.Minute}, {1, 110 * time.Minute}} {
		p := &Policy{cfg: PolicyConfig{Interval: 100 * time.Minute, Jitter: 0.2, Rand: func() float64 { return c.r }}}
		if got := p.delay(); got != c.want {
			t.Errorf("rand %v: delay %v, want %v", c.r, got, c.want)
		}
	}
}

// TestScheduleGoesOnFromTheRepository: a node that starts (a new policy)
// schedules a shard's next run one interval after the latest snapshot in
// the repository, not at once.
func TestScheduleGoesOnFromTheRepository(t *testing.T) {
	repo := localRepo(t)
	n := newNode(t, repo, 20)
	ctx := context.Background()
	c, err := n.svc.Create(ctx, testShard, TriggerAPI)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPolicy(n.svc, PolicyConfig{Interval: time.Hour, Scope: ScopePrimaries, NodeID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	p.Tick(ctx, &wg)
	wg.Wait()
	st := p.Status()
	if len(st) != 1 || st[0].LatestID != c.Manifest.ID || !st[0].Next.Equal(c.Manifest.StartTime.Add(time.Hour)) || st[0].LastResult != "" {
		t.Fatalf("status %+v: want the snapshot %s known and the next run an hour after it, none run yet", st, c.Manifest.ID)
	}
	if got := len(list(t, repo)); got != 1 {
		t.Fatalf("%d snapshots, want the one taken before the start", got)
	}
}

// TestUploadSlotsBoundSnapshots: --max-snapshot-uploads bounds the
// snapshots being created at once on the node, whoever asks.
func TestUploadSlotsBoundSnapshots(t *testing.T) {
	repo := localRepo(t)
	n := newNode(t, repo, 200)
	other := shardstore.ShardID{Index: "logs", Shard: 1}
	s, err := n.reg.Create(other, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.IndexBatch(context.Background(), []shardstore.Doc{{Key: "k", Value: make([]byte, 4096)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	var inside, most atomic.Int32
	release := make(chan struct{})
	// The throttle sees every upload byte: it holds the first upload until
	// released, counting the uploads inside it.
	n.svc.cfg.Throttle = func(ctx context.Context, _ int) error {
		now := inside.Add(1)
		defer inside.Add(-1)
		for {
			old := most.Load()
			if now <= old || most.CompareAndSwap(old, now) {
				break
			}
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, id := range []shardstore.ShardID{testShard, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := n.svc.Create(context.Background(), id, TriggerAPI)
			errs <- err
		}()
	}
	eventually(t, "one upload in the throttle, the other waiting for its slot", func() bool { return inside.Load() == 1 && n.svc.Queued() == 1 })
	if inside.Load() != 1 {
		t.Fatal("the second snapshot uploads while it waits for a slot")
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if most.Load() != 1 {
		t.Fatalf("%d snapshots uploaded at once, want 1 (MaxUploads)", most.Load())
	}
}
