package integration

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/recoverd/recoverd/internal/testutil"
)

// What operators and clients rely on from the first moment of a node.

// TestFreshNodeMetricsAtZero: a node that has done nothing yet exports
// every labelled family with its known label values at zero, so rates and
// alerts work from the first scrape (they were absent until their first
// event).
func TestFreshNodeMetricsAtZero(t *testing.T) {
	n := wrap(testutil.StartNode(t, testutil.NodeOptions{Name: "n1"}))
	m := scrape(t, n)
	want := []string{
		series("recoverd_recovered_bytes_total", "source", "peer"),
		series("recoverd_recovered_bytes_total", "source", "snapshot"),
		series("recoverd_recovered_bytes_total", "source", "reused"),
		series("recoverd_fallbacks_total", "cause", "checksum"),
		series("recoverd_fallbacks_total", "cause", "unavailable"),
		series("recoverd_retries_total", "cause", "peer_stream"),
		series("recoverd_retries_total", "cause", "source_call"),
		series("recoverd_replans_total", "cause", "lease_lost"),
		series("recoverd_replans_total", "cause", "pin_lost"),
		series("recoverd_cleanup_removals_total", "kind", "upload"),
	}
	for _, kind := range []string{"ops-only", "peer", "snapshot", "hybrid"} {
		want = append(want, series("recoverd_recoveries_started_total", "kind", kind),
			series("recoverd_recovery_duration_seconds_count", "kind", kind),
			series("recoverd_recovery_duration_seconds_bucket", "kind", kind, "le", "+Inf"))
		for _, result := range []string{"done", "failed", "cancelled"} {
			want = append(want, series("recoverd_recoveries_finished_total", "kind", kind, "result", result))
		}
	}
	want = append(want, series("recoverd_recoveries_finished_total", "kind", "none", "result", "failed"),
		series("recoverd_recoveries_finished_total", "kind", "refused", "result", "failed"))
	for _, op := range []string{"list", "get", "put", "head", "delete"} {
		for _, kind := range []string{"recovery", "snapshot", "cleanup", "other"} {
			want = append(want, series("recoverd_s3_requests_total", "op", op, "kind", kind))
		}
	}
	for _, s := range want {
		v, ok := m[s]
		if !ok {
			t.Errorf("a fresh node does not export %s", s)
		} else if v != 0 {
			t.Errorf("%s = %v on a fresh node", s, v)
		}
	}
}

// TestHealthPerService: gRPC health answers for each service a listener
// serves, not only for the empty name, and NOT_FOUND for the others.
func TestHealthPerService(t *testing.T) {
	n := testutil.StartNode(t, testutil.NodeOptions{Name: "n1"})
	for _, c := range []struct {
		addr     string
		serving  []string
		notFound []string
	}{
		{n.GRPCAddr, []string{"", "recoverd.v1.RecoveryService", "recoverd.v1.SnapshotService", "recoverd.v1.ShardService"},
			[]string{"recoverd.v1.PeerService", "recoverd.v1.NoSuchService"}},
		{n.PeerAddr, []string{"", "recoverd.v1.PeerService"}, []string{"recoverd.v1.RecoveryService", "recoverd.v1.ShardService"}},
	} {
		conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		hc := healthpb.NewHealthClient(conn)
		for _, svc := range c.serving {
			resp, err := hc.Check(ctxT(t), &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("%s: health of %q: %v %v, want SERVING", c.addr, svc, resp.GetStatus(), err)
			}
		}
		for _, svc := range c.notFound {
			_, err := hc.Check(ctxT(t), &healthpb.HealthCheckRequest{Service: svc})
			requireCode(t, "health of "+svc+" on "+c.addr, err, codes.NotFound)
		}
		conn.Close()
	}
}
