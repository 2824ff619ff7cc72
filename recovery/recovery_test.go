package recovery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

// These tests run the executor in process against a real PeerServer on a
// loopback gRPC listener, real shards on disk and a real local repository.

func TestPeerRecoveryStagesOpsWithFiles(t *testing.T) {
	e := newEnv(t, shardstore.Options{RetainOps: 1000}, Config{})
	src := e.source()
	write(t, src, 500, 0, 256)
	flush(t, src)
	write(t, src, 100, 500, 256) // above the commit
	s := e.run(StartRequest{})
	requireDone(t, s)
	if s.Plan.Kind != planner.KindPeer || s.OpsReplayed != 100 {
		t.Fatalf("plan %s, %d ops replayed", s.Plan.Kind, s.OpsReplayed)
	}
	want := []Stage{StageQueued, StageInit, StagePlan, StageFiles, StageVerify, StageFinalize, StageOps}
	if len(s.Stages) != len(want) {
		t.Fatalf("stages %+v", s.Stages)
	}
	for i, st := range s.Stages {
		if st.Stage != want[i] || st.End.IsZero() {
			t.Fatalf("stage %d: %+v, want %s ended", i, st, want[i])
		}
	}
	if digest(t, e.target()) != digest(t, src) {
		t.Fatal("copy differs")
	}
	// The recovery's lease became the copy's, retaining from the copy's
	// checkpoint + 1 (the hand-off to replication).
	ls := src.Leases().List()
	cp := e.target().Stats().Seq.LocalCheckpoint
	if len(ls) != 1 || ls[0].ID != "copy-target" || ls[0].Holder != "target" || ls[0].RetainingSeqNo != cp+1 {
		t.Fatalf("the source holds leases %+v, want the copy's alone, from %d", ls, cp+1)
	}
	if s.HandOff == nil || s.HandOff.Lease != "copy-target" || s.HandOff.From != cp+1 {
		t.Fatalf("the recovery's state says hand-off %+v", s.HandOff)
	}
	noStaging(t, e.target())
}

func TestSecondRecoveryOfShardIsRefused(t *testing.T) {
	e := newEnv(t, shardstore.Options{}, Config{Throttle: transfer.NewThrottle(256 << 10)})
	src := e.source()
	write(t, src, 400, 0, 1024)
	flush(t, src)
	r, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr, ID: "first"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr, ID: "second"}); !errors.Is(err, ErrRunning) {
		t.Fatalf("second start: %v, want ErrRunning", err)
	}
	if same, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr, ID: "first"}); err != nil || same != r {
		t.Fatalf("restart with the same id: %v", err)
	}
	<-r.Done()
}

func TestCancelLeavesTargetAsItWas(t *testing.T) {
	e := envWithOwnCopy(t, Config{})
	src, tgt := e.source(), e.target()
	before := digest(t, tgt)
	r, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr, ID: "to-cancel"})
	if err != nil {
		t.Fatal(err)
	}
	waitBytes(t, r)
	if _, err := e.m.Cancel(context.Background(), "to-cancel", "test"); err != nil {
		t.Fatal(err)
	}
	s, _ := r.State()
	if s.Stage != StageCancelled || len(s.Fallbacks) != 0 {
		t.Fatalf("after cancel: %s (%s), fallbacks %v", s.Stage, s.Error, s.Fallbacks)
	}
	if digest(t, tgt) != before {
		t.Fatal("a cancelled recovery changed the target")
	}
	noStaging(t, tgt)
	if len(src.Leases().List()) != 0 {
		t.Fatal("lease not released after cancel")
	}
}

func TestQueueHoldsRecoveriesBeyondTheLimit(t *testing.T) {
	e := newEnv(t, shardstore.Options{}, Config{MaxConcurrent: 1, Throttle: transfer.NewThrottle(2 << 20)})
	var rs []*Recovery
	for i := 0; i < 3; i++ {
		id := engine.ShardID{Index: "q", Shard: i}
		s, err := e.src.get(id, true, false)
		if err != nil {
			t.Fatal(err)
		}
		write(t, s, 300, 0, 1024)
		flush(t, s)
		r, err := e.m.Start(StartRequest{Shard: id, Source: e.addr})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	sawQueued, maxRunning := false, 0
	for {
		running, finished := 0, 0
		for _, r := range rs {
			s, _ := r.State()
			switch {
			case s.Stage == StageQueued:
				sawQueued = true
			case s.Stage.Finished():
				finished++
				requireDone(t, s)
			default:
				running++
			}
		}
		maxRunning = max(maxRunning, running)
		if finished == len(rs) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !sawQueued || maxRunning > 1 {
		t.Fatalf("queued seen %v, max running %d (limit 1)", sawQueued, maxRunning)
	}
}

func TestLeaseLostMakesTheRecoveryReplan(t *testing.T) {
	e := newEnv(t, shardstore.Options{LeaseTTL: 600 * time.Millisecond}, Config{Throttle: transfer.NewThrottle(1 << 20)})
	src := e.source()
	write(t, src, 2500, 0, 1024) // ~2.5 MiB at 1 MiB/s: renewals must happen
	flush(t, src)
	e.faults.set("/recoverd.v1.PeerService/RenewLease", true)
	go func() {
		// Renewals fail past the lease's expiry, then work again.
		time.Sleep(1500 * time.Millisecond)
		e.faults.set("/recoverd.v1.PeerService/RenewLease", false)
	}()
	s := e.run(StartRequest{})
	requireDone(t, s)
	if s.Replans < 1 {
		t.Fatalf("a lease lost for good must make the recovery re-plan; replans %d", s.Replans)
	}
	if digest(t, e.target()) != digest(t, src) {
		t.Fatal("copy differs")
	}
}

func TestLeaseRenewalFailingBrieflyIsRidden(t *testing.T) {
	e := newEnv(t, shardstore.Options{LeaseTTL: 3 * time.Second}, Config{Throttle: transfer.NewThrottle(1 << 20)})
	src := e.source()
	write(t, src, 2500, 0, 1024)
	flush(t, src)
	e.faults.set("/recoverd.v1.PeerService/RenewLease", true)
	go func() {
		time.Sleep(1200 * time.Millisecond) // renewals fail for less than the TTL
		e.faults.set("/recoverd.v1.PeerService/RenewLease", false)
	}()
	s := e.run(StartRequest{})
	requireDone(t, s)
	if s.Replans != 0 {
		t.Fatalf("re-planned although the lease never expired: %d", s.Replans)
	}
	if e.faults.hits.Load() == 0 {
		t.Fatal("no renewal was attempted while the fault was on")
	}
}

// failoverSource makes the source a promoted replica whose files differ
// from the primary's snapshot, as after a failover, and returns the
// snapshot.
func failoverSource(t *testing.T, e *env) *snapshot.CreateResult {
	t.Helper()
	primaryDir := newDirShards(t, shardstore.Options{})
	primary, err := primaryDir.get(shardID, true, false)
	if err != nil {
		t.Fatal(err)
	}
	replica := e.source()
	// The replica shares the primary's history: publish the primary's
	// empty commit on it.
	st, err := replica.StartStaging("init")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Publish(nil, primary.Metadata().Commit); err != nil {
		t.Fatal(err)
	}
	var ops []engine.Op
	for i := 0; i < 4; i++ {
		ops = append(ops, write(t, primary, 500, i*500, 1024)...)
		flush(t, primary)
	}
	for i := len(ops) - 1; i >= 0; i -= 250 {
		if err := replica.Apply(context.Background(), ops[max(0, i-249):i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := replica.Merge(); err != nil {
		t.Fatal(err)
	}
	cp := primary.Stats().Seq.LocalCheckpoint
	primary.SetGlobalCheckpoint(cp)
	replica.SetGlobalCheckpoint(cp)
	flush(t, primary)
	flush(t, replica)
	res, err := snapshot.Create(context.Background(), e.repo, snapshot.StoreSource(primary), snapshot.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Promote(); err != nil {
		t.Fatal(err)
	}
	return res
}

func corruptBlob(t *testing.T, e *env, entry snapshot.FileEntry) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(e.repo.Root(), filepath.FromSlash(entry.Blob)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("rot"), entry.Length/2); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotPlanFallsBackToPeerOnCorruptBlob(t *testing.T) {
	e := newEnv(t, shardstore.Options{}, Config{})
	snap := failoverSource(t, e)
	corruptBlob(t, e, snap.Manifest.Files[len(snap.Manifest.Files)-1])
	s := e.run(StartRequest{})
	requireDone(t, s)
	if len(s.Fallbacks) != 1 || s.Fallbacks[0].From != planner.KindSnapshot || s.Plan.Kind != planner.KindPeer {
		t.Fatalf("fallbacks %+v, plan %s", s.Fallbacks, s.Plan.Kind)
	}
	if name := snap.Manifest.Files[len(snap.Manifest.Files)-1].Name; !contains(s.Fallbacks[0].Cause, name) {
		t.Fatalf("the fallback cause does not name the corrupt file %s: %s", name, s.Fallbacks[0].Cause)
	}
	if s.Totals.FromSnapshot.Files != 0 || s.Totals.FromPeer.RecoveredBytes != s.Totals.Total.Bytes {
		t.Fatalf("totals after fallback: %+v", s.Totals)
	}
	if digest(t, e.target()) != digest(t, e.source()) {
		t.Fatal("copy differs")
	}
	noStaging(t, e.target())
}

func TestHybridFetchesAFailedFileFromThePeer(t *testing.T) {
	e := newEnv(t, shardstore.Options{RetainOps: 0}, Config{})
	src := e.source()
	for i := 0; i < 3; i++ {
		write(t, src, 300, i*300, 1024)
		flush(t, src)
	}
	res, err := snapshot.Create(context.Background(), e.repo, snapshot.StoreSource(src), snapshot.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, src, 300, 900, 1024)
	flush(t, src)
	corruptBlob(t, e, res.Manifest.Files[0])
	s := e.run(StartRequest{})
	requireDone(t, s)
	if s.Plan.Kind != planner.KindHybrid {
		t.Fatalf("plan %s, want hybrid", s.Plan.Kind)
	}
	if len(s.Fallbacks) != 1 || !contains(s.Fallbacks[0].Cause, res.Manifest.Files[0].Name) {
		t.Fatalf("fallbacks %+v", s.Fallbacks)
	}
	if s.Totals.FromSnapshot.Files != 2 || s.Totals.FromPeer.Files != 2 {
		t.Fatalf("totals %+v: want 2 files from the snapshot, 2 from the peer", s.Totals)
	}
	if digest(t, e.target()) != digest(t, src) {
		t.Fatal("copy differs")
	}
}

func TestRepositoryUnavailableMeansPeerPlan(t *testing.T) {
	broken, err := snapshot.OpenRepository("s3://bucket/p?endpoint=127.0.0.1:1&tls=false",
		snapshot.S3Options{AccessKey: "k", SecretKey: "s", Retry: retry.Options{MaxElapsed: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, shardstore.Options{}, Config{Repo: broken})
	src := e.source()
	write(t, src, 100, 0, 128)
	flush(t, src)
	s := e.run(StartRequest{})
	requireDone(t, s)
	if s.Plan.Kind != planner.KindPeer {
		t.Fatalf("plan %s", s.Plan.Kind)
	}
	found := false
	for _, r := range s.Plan.Reasons {
		found = found || contains(r, "unavailable")
	}
	if !found {
		t.Fatalf("no reason says the repository is unavailable: %v", s.Plan.Reasons)
	}
}

func TestExplainChangesNothing(t *testing.T) {
	e := newEnv(t, shardstore.Options{}, Config{})
	src := e.source()
	write(t, src, 100, 0, 128)
	flush(t, src)
	p, err := e.m.Explain(context.Background(), StartRequest{Shard: shardID, Source: e.addr})
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != planner.KindPeer || len(p.FromPeer) != 1 {
		t.Fatalf("plan %s with %d files from the peer", p.Kind, len(p.FromPeer))
	}
	if shardstore.Exists(e.tgt.dir, shardID) {
		t.Fatal("explaining created the target shard")
	}
	if len(e.m.List()) != 0 {
		t.Fatal("explaining registered a recovery")
	}
	if len(src.Leases().List()) != 0 {
		t.Fatal("explaining left a lease on the source")
	}
}

func TestCheckWithoutDigestReadsNoShardOnTheSource(t *testing.T) {
	e := newEnv(t, shardstore.Options{}, Config{VerifyDigest: DigestNever})
	src := e.source()
	write(t, src, 200, 0, 256)
	flush(t, src)
	s := e.run(StartRequest{})
	requireDone(t, s)
	if s.Result.SourceDigest != "" || !contains(s.Result.Detail, "digests not compared") {
		t.Fatalf("check without digests: %+v", s.Result)
	}
	if digest(t, e.target()) != digest(t, src) {
		t.Fatal("copy differs")
	}
}

// TestAutoCheckSparesTheSourceAfterASnapshotPlan: after a snapshot plan,
// whose point is to read nothing of the source's shard, the default check
// is the streamed one: the ops moved, digested on both nodes; the source
// reads no more than the ops it sent.
func TestAutoCheckSparesTheSourceAfterASnapshotPlan(t *testing.T) {
	var scans atomic.Int64
	e := newEnv(t, countScans(&scans), Config{VerifyDigest: DigestAuto})
	failoverSource(t, e)
	scans.Store(0)
	s := e.run(StartRequest{})
	requireDone(t, s)
	if s.Plan.Kind != planner.KindSnapshot || s.Result.Method != CheckStreamed || scans.Load() != 0 {
		t.Fatalf("plan %s, check %+v, %d content digests on the source", s.Plan.Kind, s.Result, scans.Load())
	}
	if digest(t, e.target()) != digest(t, e.source()) {
		t.Fatal("copy differs")
	}
}

// TestDoneRecoveryHasGivenItsShardBack: whoever sees a recovery done may
// write to its shard at once (the integration test
// TestWritesRefusedWhileRecovering failed when the shard was given back
// after the final stage showed).
func TestDoneRecoveryHasGivenItsShardBack(t *testing.T) {
	e := newEnv(t, shardstore.Options{}, Config{})
	write(t, e.source(), 50, 0, 64)
	flush(t, e.source())
	r, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if s, _ := r.State(); s.Stage.Finished() {
			requireDone(t, s)
			break
		}
		runtime.Gosched()
	}
	if id, ok := e.m.ActiveStagings()[shardID]; ok {
		t.Fatalf("recovery %s shows done but still holds its shard", id)
	}
}

// TestCancelDuringCatchUpEndsCancelled: a cancel that lands while the
// recovery asks its source for new ops ends the recovery cancelled, not
// failed with the call's "context canceled".
func TestCancelDuringCatchUpEndsCancelled(t *testing.T) {
	e := newEnv(t, shardstore.Options{}, Config{})
	write(t, e.source(), 200, 0, 256)
	flush(t, e.source())
	r, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr, ID: "cancel-in-catch-up"})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
		s, _ := r.State()
		if s.Stage == StageFiles || s.Stage == StageVerify || s.Stage == StageFinalize {
			// The catch-up's ask for new ops hangs: the cancel lands
			// in the call.
			e.faults.hangOn("/recoverd.v1.PeerService/GetShardMetadata")
		}
		if s.Stage == StageOps {
			break
		}
		if time.Now().After(deadline) || s.Stage.Finished() {
			t.Fatalf("the recovery did not reach its ops stage: %s %s", s.Stage, s.Error)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); e.faults.hits.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the catch-up did not ask the source")
		}
	}
	if _, err := e.m.Cancel(context.Background(), "cancel-in-catch-up", "test"); err != nil {
		t.Fatal(err)
	}
	if s := waitDone(t, r); s.Stage != StageCancelled {
		t.Fatalf("cancelled during the catch-up: %s (%s), want cancelled", s.Stage, s.Error)
	}
}

// A new plan (a fallback, a re-plan) stages its ops anew: the ops an
// earlier plan staged do not count as replayed (the demo showed 3,000 ops
// replayed after a fallback whose peer plan moved none).
func TestNewPlanCountsItsOwnOps(t *testing.T) {
	r := newRecovery(State{ID: "r", Shard: shardID})
	r.setPlan(planner.Plan{Kind: planner.KindSnapshot, Ops: seqno.Range{From: 0, To: 2999}})
	r.addOps(0, 3000)
	r.setPlan(planner.Plan{Kind: planner.KindPeer, Ops: seqno.EmptyRange})
	if s, _ := r.State(); s.OpsReplayed != 0 || s.OpsTotal != 0 {
		t.Fatalf("after the fallback to a plan without ops: %d of %d ops replayed, want 0 of 0", s.OpsReplayed, s.OpsTotal)
	}
}
