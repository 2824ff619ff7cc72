package integration

import (
	"strings"
	"testing"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
)

// Network faults between the target and its source: the target is given
// a TCP proxy's address as the source address, so files, ops, pins and
// lease renewals all go through it.

// TestNetworkBlackholeMidStream: the network drops everything for 3s
// mid-stream. Idle streams hit their deadline and are resumed; when the
// network is back the recovery completes, from the offsets it had.
func TestNetworkBlackholeMidStream(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1", "--throttle", "2MB")
	n2 := c.node("n2", "--idle-timeout", "1s", "--retry-budget", "15s")
	seed(t, n1, 3, 1500, 1024, 100)
	p := testutil.StartProxy(t, n1.PeerAddr)
	src := stateOf(t, n1, shardID)
	before := scrape(t, n2)
	id := startRecovery(t, n2, p.Addr, nil)
	waitFor(t, n2, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromPeer().GetRecoveredBytes() > 1<<20 })
	p.Blackhole()
	time.Sleep(500 * time.Millisecond)
	stalled := getRecovery(t, n2, id).GetTotals().GetFromPeer().GetRecoveredBytes()
	time.Sleep(2500 * time.Millisecond)
	if now := getRecovery(t, n2, id).GetTotals().GetFromPeer().GetRecoveredBytes(); now != stalled {
		t.Fatalf("bytes moved through a blackhole: %d -> %d", stalled, now)
	}
	p.Pass()
	passed := time.Now()
	r := waitRecovery(t, n2, id)
	t.Logf("done %v after the network came back", time.Since(passed).Round(time.Millisecond))
	requireDone(t, r)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
	if r.Resumes < 2 || r.Replans != 0 {
		t.Fatalf("resumes %d, replans %d: want streams resumed after their idle deadline, no re-plan", r.Resumes, r.Replans)
	}
	t.Logf("resumes %d; proxy %+v", r.Resumes, p.Stats())
	finalChecks(t, r, n1, n2, src, shardState{})
	after := scrape(t, n2)
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "done")
	requireMoved(t, before, after, -1, "recoverd_retries_total", "cause", "peer_stream")
	requireMoved(t, before, after, 0, "recoverd_replans_total", "cause", "lease_lost")
}

// TestNetworkBlackholeForGood: the network never comes back. Streams hit
// their idle deadline, retries spend the budget, the recovery fails saying
// so, and the target is what it was.
func TestNetworkBlackholeForGood(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1", "--throttle", "2MB")
	n2 := c.node("n2", "--idle-timeout", "1s", "--retry-budget", "3s")
	seed(t, n1, 2, 1500, 1024, 0)
	p := testutil.StartProxy(t, n1.PeerAddr)
	src := stateOf(t, n1, shardID)
	before := scrape(t, n2)
	id := startRecovery(t, n2, p.Addr, nil)
	waitFor(t, n2, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromPeer().GetRecoveredBytes() > 512<<10 })
	p.Blackhole()
	cut := time.Now()
	r := waitRecovery(t, n2, id)
	t.Logf("failed %v after the network went dark: %s", time.Since(cut).Round(time.Millisecond), r.Error)
	requireFailed(t, r, "retries exhausted", "idle")
	finalChecks(t, r, n1, n2, src, shardState{})
	after := scrape(t, n2)
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "failed")
	requireMoved(t, before, after, -1, "recoverd_retries_total", "cause", "peer_stream")
}

// TestNetworkTrickle: the network slows to 64 KiB/s. A chunk (250 KB
// under the source's 2 MB/s budget) then takes 4s, longer than the 1s idle
// deadline, but its bytes keep coming: a slow link is not a dead one, so
// no stream is cut and the recovery moves on, slowly, then completes once
// the network is fast again. (Until 4 MiB chunks came, the deadline
// counted whole chunks: every stream was cut and resumed without
// progress, forever, on any link too slow for a chunk a second.)
func TestNetworkTrickle(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1", "--throttle", "2MB")
	n2 := c.node("n2", "--idle-timeout", "1s", "--retry-budget", "20s")
	seed(t, n1, 3, 1500, 1024, 0)
	p := testutil.StartProxy(t, n1.PeerAddr)
	src := stateOf(t, n1, shardID)
	before := scrape(t, n2)
	id := startRecovery(t, n2, p.Addr, nil)
	waitFor(t, n2, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromPeer().GetRecoveredBytes() > 1<<20 })
	p.Slow(64 << 10)
	time.Sleep(500 * time.Millisecond) // what was in flight at full speed lands
	start := getRecovery(t, n2, id)
	time.Sleep(6 * time.Second)
	slow := getRecovery(t, n2, id)
	p.Slow(0)
	moved := slow.GetTotals().GetFromPeer().GetRecoveredBytes() - start.GetTotals().GetFromPeer().GetRecoveredBytes()
	if slow.Resumes != 0 || moved <= 0 {
		t.Fatalf("while the network trickled: %d resumes, %d bytes moved; want streams kept and bytes moving", slow.Resumes, moved)
	}
	r := waitRecovery(t, n2, id)
	requireDone(t, r)
	t.Logf("%d bytes moved in 6s of trickle; resumes %d", moved, r.Resumes)
	finalChecks(t, r, n1, n2, src, shardState{})
	after := scrape(t, n2)
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "done")
}

// TestLeaseRenewalsFailBriefly: lease renewals fail (the network drops
// everything) for less than the lease's TTL. Renewals are retried, the
// lease is kept, and the recovery goes on without re-planning.
func TestLeaseRenewalsFailBriefly(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1", "--throttle", "1MB", "--lease-ttl", "6s")
	n2 := c.node("n2", "--retry-budget", "20s")
	seed(t, n1, 3, 1500, 1024, 0)
	p := testutil.StartProxy(t, n1.PeerAddr)
	src := stateOf(t, n1, shardID)
	before := scrape(t, n2)
	id := startRecovery(t, n2, p.Addr, nil)
	waitFor(t, n2, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromPeer().GetRecoveredBytes() > 512<<10 })
	// Renewals go every 2s: at least one falls in a 2.5s blackhole, and
	// the lease (6s) outlives it.
	p.Blackhole()
	time.Sleep(2500 * time.Millisecond)
	p.Pass()
	r := waitRecovery(t, n2, id)
	requireDone(t, r)
	if r.Replans != 0 {
		t.Fatalf("re-planned %d times although the lease never expired", r.Replans)
	}
	finalChecks(t, r, n1, n2, src, shardState{})
	after := scrape(t, n2)
	requireMoved(t, before, after, -1, "recoverd_retries_total", "cause", "lease_renewal")
	requireMoved(t, before, after, 0, "recoverd_replans_total", "cause", "lease_lost")
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "done")
}

// TestLeaseRenewalsFailPastExpiry: renewals fail for longer than the
// lease's TTL. The recovery must not go on as if the ops were still
// retained: it re-plans (keeping the files it verified) and completes once
// the network is back.
func TestLeaseRenewalsFailPastExpiry(t *testing.T) {
	c := newCluster(t)
	n1 := c.node("n1", "--throttle", "1MB", "--lease-ttl", "3s")
	n2 := c.node("n2", "--retry-budget", "30s")
	seed(t, n1, 3, 1500, 1024, 0)
	p := testutil.StartProxy(t, n1.PeerAddr)
	src := stateOf(t, n1, shardID)
	before := scrape(t, n2)
	id := startRecovery(t, n2, p.Addr, nil)
	waitFor(t, n2, id, func(r *pb.Recovery) bool { return r.GetTotals().GetFromPeer().GetRecoveredBytes() > 512<<10 })
	p.Blackhole()
	time.Sleep(6 * time.Second)
	p.Pass()
	r := waitRecovery(t, n2, id)
	requireDone(t, r)
	if r.Replans < 1 {
		t.Fatal("the lease expired but the recovery did not re-plan")
	}
	finalChecks(t, r, n1, n2, src, shardState{})
	after := scrape(t, n2)
	requireMoved(t, before, after, -1, "recoverd_replans_total", "cause", "lease_lost")
	requireMoved(t, before, after, -1, "recoverd_retries_total", "cause", "lease_renewal")
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "done")
	if sent, total := scrape(t, n1)["recoverd_peer_sent_bytes_total"], r.GetTotals().GetTotal().GetBytes(); sent > 2*float64(total) {
		t.Fatalf("the source sent %v bytes for %d: the re-plan fetched verified files again", sent, total)
	}
	if !strings.Contains(strings.Join(r.GetPlan().GetReasons(), " "), "peer") {
		t.Fatalf("plan reasons: %v", r.GetPlan().GetReasons())
	}
}
