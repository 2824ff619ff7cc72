package transfer

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// The peer metrics read the server's counters and pass promlint.
func TestPeerMetricsReadTheServer(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 10, valueSize: 16})
	srv := NewPeerServer(engineOf(t, src), PeerServerConfig{})
	t.Cleanup(func() { srv.Close() })
	reg := prometheus.NewPedanticRegistry()
	srv.RegisterMetrics(reg)
	if _, err := srv.PinCommit(context.Background(), &pb.PinCommitRequest{Shard: pbShard()}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	for name, want := range map[string]float64{"recoverd_commit_pins": 1, "recoverd_commit_pins_peak": 1,
		"recoverd_peer_sent_bytes_total": 0, "recoverd_peer_sent_ops_total": 0} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (exported %v), want %v", name, v, ok, want)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
