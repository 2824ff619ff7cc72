package integration

import (
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// TestSoak runs the fault scenarios over and over, in a random order, for
// as long as RECOVERD_SOAK says (a Go duration, e.g. 2h): `make soak`. It
// is skipped otherwise, so `make test` stays within minutes. Each round is
// a whole scenario with its own MinIO, nodes and data; a failure stops the
// soak with the round's name and seed in the log.
func TestSoak(t *testing.T) {
	v := os.Getenv("RECOVERD_SOAK")
	if v == "" {
		t.Skip("set RECOVERD_SOAK to a duration (make soak) to run the soak")
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("RECOVERD_SOAK=%q: %v", v, err)
	}
	scenarios := []struct {
		name string
		run  func(*testing.T)
	}{
		{"HybridFallbackWhenMinIOKilled", TestHybridFallbackWhenMinIOKilled},
		{"SnapshotFallbackWhenMinIOHangs", TestSnapshotFallbackWhenMinIOHangs},
		{"SnapshotFallbackWhenMinIOStops", TestSnapshotFallbackWhenMinIOStops},
		{"SnapshotBlobCorrupted", TestSnapshotBlobCorrupted},
		{"RepositoryUnreachableWhenPlanning", TestRepositoryUnreachableWhenPlanning},
		{"SourceRestartedMidTransfer", TestSourceRestartedMidTransfer},
		{"SourceKilledForGood", TestSourceKilledForGood},
		{"TargetKilledAtRandomPoints", TestTargetKilledAtRandomPoints},
		{"TargetKilledDuringALargePeerPlanResumes", TestTargetKilledDuringALargePeerPlanResumes},
		{"NetworkBlackholeMidStream", TestNetworkBlackholeMidStream},
		{"NetworkTrickle", TestNetworkTrickle},
		{"LeaseRenewalsFailBriefly", TestLeaseRenewalsFailBriefly},
		{"LeaseRenewalsFailPastExpiry", TestLeaseRenewalsFailPastExpiry},
		{"WritesDuringRecovery", TestWritesDuringRecovery},
		{"BadPeerChunks", TestBadPeerChunks},
		{"Load50Shards", TestLoad50Shards},
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("soak for %v, seed %d", d, seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	began := time.Now()
	end := began.Add(d)
	for round := 1; time.Now().Before(end); round++ {
		sc := scenarios[rng.IntN(len(scenarios))]
		start := time.Now()
		if !t.Run(sc.name, sc.run) {
			t.Fatalf("round %d (%s) failed after %v of soak", round, sc.name, time.Since(began).Round(time.Second))
		}
		t.Logf("round %d: %s passed in %v", round, sc.name, time.Since(start).Round(time.Millisecond))
	}
}
