package integration

import (
	"strings"
	"testing"
	"time"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/testutil"
)

// TestRecoveryOutlivesEveryTTL compresses time: the commit pin, the
// retention lease, the cleanup sweep (staging) and the upload grace all
// last 1s, while a snapshot plan, slowed by a throttling proxy in front of
// MinIO, downloads for about 20s. Near the end blobs are found corrupt and
// the plan falls back to the peer: the pin it needs was kept alive the
// whole time, so the fallback completes without a re-plan, and the copy
// equals its source.
func TestRecoveryOutlivesEveryTTL(t *testing.T) {
	const ttl = time.Second
	ttls := []string{"--pin-ttl", ttl.String(), "--lease-ttl", ttl.String(), "--cleanup-interval", ttl.String(), "--upload-grace", ttl.String()}
	c := newCluster(t)
	slow := testutil.StartProxy(t, c.minio.Endpoint)
	n1, n2 := c.node("n1", ttls...), c.node("n2", ttls...)
	n3 := c.node("n3", append(ttls, "--repo", strings.Replace(c.repo, c.minio.Endpoint, slow.Addr, 1), "--max-snapshot-downloads", "1")...)
	snapID := failoverSegments(t, n1, n2, 2000, 10, true)
	man := readManifest(t, c, snapID)
	src := stateOf(t, n2, shardID)
	before := scrape(t, n3)
	slow.Slow(100 << 10) // ~2 MB of blobs: about 20s of downloads

	id := startRecovery(t, n3, n2.PeerAddr, nil)
	// Near the end, with 10 TTLs gone by: corrupt the blobs of the files
	// with no byte downloaded yet (at most one of them is in flight, its
	// bytes already read: the others fail their checksum when their turn
	// comes).
	var corrupt []string
	waitFor(t, n3, id, func(r *pb.Recovery) bool {
		if time.Since(r.StartTime.AsTime()) < 10*ttl || r.GetTotals().GetFromSnapshot().GetRecoveredBytes()*10 < r.GetTotals().GetFromSnapshot().GetBytes()*6 {
			return false
		}
		for _, f := range r.Files {
			if f.Source != pb.FileSource_FILE_SOURCE_SNAPSHOT || f.RecoveredBytes > 0 {
				continue
			}
			for _, e := range man.Files {
				if e.Name == f.Name {
					data := getObject(t, c, e.Blob)
					for i := range data[:len(data)-4] {
						data[i] ^= 0x5a
					}
					putObject(t, c, e.Blob, data)
					corrupt = append(corrupt, f.Name)
				}
			}
		}
		if len(corrupt) < 2 {
			t.Fatalf("at %v only %v had no byte downloaded; the proxy is too fast for the test", time.Since(r.StartTime.AsTime()), corrupt)
		}
		return true
	})
	r := waitRecovery(t, n3, id)
	requireDone(t, r)
	took := r.EndTime.AsTime().Sub(r.StartTime.AsTime())
	t.Logf("recovered in %v (%d TTLs); fallback: %v", took.Round(time.Millisecond), took/ttl, r.Fallbacks)
	requireKind(t, r, pb.PlanKind_PLAN_KIND_PEER)
	if r.Replans != 0 || len(r.Fallbacks) != 1 || r.Fallbacks[0].FromKind != pb.PlanKind_PLAN_KIND_SNAPSHOT || !strings.Contains(r.Fallbacks[0].Cause, "checksum") {
		t.Fatalf("replans %d, fallbacks %v: want one fallback from the snapshot plan on a checksum, and no re-plan", r.Replans, r.Fallbacks)
	}
	if took < 10*ttl {
		t.Fatalf("the recovery took %v, less than 10 TTLs: it tested nothing", took)
	}
	finalChecks(t, r, n2, n3, src, shardState{})
	after := scrape(t, n3)
	requireMoved(t, before, after, 1, "recoverd_recoveries_finished_total", "kind", "peer", "result", "done")
	requireMoved(t, before, after, 0, "recoverd_replans_total", "cause", "pin_lost")
	if pins := scrape(t, n2)["recoverd_commit_pins"]; pins != 0 {
		t.Fatalf("the source still holds %v commit pins", pins)
	}
}
