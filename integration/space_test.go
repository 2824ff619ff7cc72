package integration

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
)

// The target's data directory is a real small disk (tmpfs): the free space
// statfs reports and the ENOSPC a full disk returns are the kernel's.

// TestRecoveryThatCannotFitIsRefused: a ~10 MB shard onto an 8 MiB disk.
// The plan is refused before any byte moves, with FailedPrecondition for
// ExplainPlan, and the error names what the plan stages and what is free.
func TestRecoveryThatCannotFitIsRefused(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1")
	n2 := c.nodeOn("n2", testutil.SmallDisk(t, 8<<20))
	seed(t, n1, 2, 5000, 1024, 0)
	before := scrape(t, n1)

	_, err := n2.rec.ExplainPlan(ctxT(t), &pb.ExplainPlanRequest{Shard: shardID, SourceAddress: n1.PeerAddr})
	requireStatus(t, "explain onto a disk too small", err, codes.FailedPrecondition, "not enough free space", "the plan stages", "free")

	r := recoverOnto(t, n2, n1, nil)
	requireFailed(t, r, "not enough free space", "the plan stages", "disk margin", "free")
	est := r.GetPlan().GetEstimate()
	staged := est.GetBytesFromPeer() + est.GetBytesFromRepo() + est.GetOpsBytes()
	if !strings.Contains(r.Error, "("+strconv.FormatInt(staged, 10)+" bytes)") || !strings.Contains(r.Error, "bytes) free") {
		t.Fatalf("the error does not name the %d bytes the plan stages and the bytes free: %s", staged, r.Error)
	}
	if sent := delta(before, scrape(t, n1), "recoverd_peer_sent_bytes_total"); sent != 0 || r.GetTotals().GetTotal().GetRecoveredBytes() != 0 {
		t.Fatalf("a refused recovery moved bytes: the source sent %v, the target recovered %d", sent, r.GetTotals().GetTotal().GetRecoveredBytes())
	}
	if leases := scrape(t, n1)["recoverd_retention_leases"]; leases != 0 {
		t.Fatalf("the source holds %v retention leases after the refusal", leases)
	}
	requireNoLeftovers(t, n2)
}

// TestDiskFullDuringTransferFailsAtOnce: the plan fits (margin 0), then the
// disk fills up while files stream. ENOSPC is permanent: the recovery
// fails saying "no space left on device", not "retries exhausted" after
// its retry budget, and leaves no staging behind.
func TestDiskFullDuringTransferFailsAtOnce(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1")
	disk := testutil.SmallDisk(t, 24<<20)
	n2 := c.nodeOn("n2", disk, "--disk-margin", "0", "--throttle", "2MB", "--retry-budget", "2m")
	seed(t, n1, 2, 6000, 1024, 0)
	src := stateOf(t, n1, shardID)

	id := startRecovery(t, n2, n1.PeerAddr, nil)
	waitFor(t, n2, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromPeer().GetRecoveredBytes() > 2<<20 })
	fill(t, filepath.Join(disk, "filler"))
	r := waitRecovery(t, n2, id)
	requireFailed(t, r, "no space left on device")
	if strings.Contains(r.Error, "retries exhausted") || r.Resumes != 0 {
		t.Fatalf("a full disk was retried (%d resumes): %s", r.Resumes, r.Error)
	}
	took := r.EndTime.AsTime().Sub(r.StartTime.AsTime())
	t.Logf("failed after %v: %s", took, r.Error)
	if err := os.Remove(filepath.Join(disk, "filler")); err != nil {
		t.Fatal(err)
	}
	requireNoLeftovers(t, n2)
	if now := stateOf(t, n1, shardID); now != src {
		t.Fatalf("the source changed: %v, was %v", now, src)
	}
}

// fill writes zeros to path until the disk is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}
