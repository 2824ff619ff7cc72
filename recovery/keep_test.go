package recovery

import (
	"testing"
	"time"

	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

// corruptLate waits until the recovery has run for at least after and
// then corrupts the blobs of the snapshot files it shows no byte of, so
// that the snapshot plan fails near its end (one of them may be in
// flight, its bytes read but not yet written; the others are not
// started); the throttle is then lifted for the fallback.
func corruptLate(t *testing.T, e *env, r *Recovery, snap *snapshot.CreateResult, after time.Duration, th *transfer.Throttle) []string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s, _ := r.State()
		if s.Stage.Finished() {
			t.Fatalf("the recovery ended (%s: %s) before a blob could be corrupted", s.Stage, s.Error)
		}
		if time.Since(s.Start) < after || s.Stage != StageFiles {
			continue
		}
		var names []string
		for _, f := range s.Files {
			if f.Source != FromSnapshot || f.Recovered > 0 {
				continue
			}
			for _, entry := range snap.Manifest.Files {
				if entry.Name == f.Name {
					corruptBlob(t, e, entry)
					names = append(names, f.Name)
				}
			}
		}
		if len(names) < 2 {
			t.Fatalf("snapshot files with no byte yet after %v: %v; the throttle is too loose for the test", after, names)
		}
		th.SetRate(0)
		return names
	}
	t.Fatal("the recovery never reached the files stage")
	return nil
}

func requireOneFallbackNoReplan(t *testing.T, e *env, s State, corrupt []string) {
	t.Helper()
	requireDone(t, s)
	if s.Replans != 0 || len(s.Fallbacks) != 1 || s.Fallbacks[0].From != planner.KindSnapshot || s.Plan.Kind != planner.KindPeer {
		t.Fatalf("replans %d, fallbacks %+v, plan %s: want one fallback from the snapshot plan to its peer plan, no re-plan (error %q)",
			s.Replans, s.Fallbacks, s.Plan.Kind, s.Error)
	}
	named := false
	for _, name := range corrupt {
		named = named || contains(s.Fallbacks[0].Cause, name)
	}
	if !named {
		t.Fatalf("the fallback cause names none of the corrupt files %v: %s", corrupt, s.Fallbacks[0].Cause)
	}
	if digest(t, e.target()) != digest(t, e.source()) {
		t.Fatal("copy differs")
	}
	noStaging(t, e.target())
}

// TestPinLivesForTheWholeAttempt: a snapshot plan downloads for several
// pin TTLs, reading nothing from the source, and a blob is found corrupt
// near the end. The pin was kept alive meanwhile, so the fallback runs its
// peer plan on it at once: no PIN_NOT_FOUND, no re-plan.
func TestPinLivesForTheWholeAttempt(t *testing.T) {
	th := transfer.NewThrottle(256 << 10)
	e := newEnv(t, shardstore.Options{}, Config{PinTTL: time.Second, MaxSnapshotDownloads: 1, Throttle: th})
	snap := failoverSource(t, e)
	r, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr})
	if err != nil {
		t.Fatal(err)
	}
	corrupt := corruptLate(t, e, r, snap, 3500*time.Millisecond, th)
	<-r.Done()
	s, _ := r.State()
	requireOneFallbackNoReplan(t, e, s, corrupt)
	if st := e.peer.Stats(); st.PinsExpired != 0 {
		t.Fatalf("%d pins expired on the source during the recovery", st.PinsExpired)
	}
}

// TestFallbackPinsAgainWhenThePinWasLost: renewals fail until the source
// drops the pin (as a partition longer than the TTL would), then a blob is
// found corrupt. Before the fallback moves a byte the commit is pinned
// again; it is the same commit, so the fallback plan runs on the new pin
// without a re-plan.
func TestFallbackPinsAgainWhenThePinWasLost(t *testing.T) {
	th := transfer.NewThrottle(256 << 10)
	e := newEnv(t, shardstore.Options{}, Config{PinTTL: time.Second, MaxSnapshotDownloads: 1, Throttle: th})
	snap := failoverSource(t, e)
	const renew = "/recoverd.v1.PeerService/RenewPin"
	e.faults.set(renew, true)
	r, err := e.m.Start(StartRequest{Shard: shardID, Source: e.addr})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); e.peer.Stats().PinsExpired == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the pin did not expire on the source while its renewals failed")
		}
	}
	e.faults.set(renew, false)
	corrupt := corruptLate(t, e, r, snap, 0, th)
	<-r.Done()
	s, _ := r.State()
	requireOneFallbackNoReplan(t, e, s, corrupt)
}
