package embedded_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/engine/embedded"
	"github.com/recoverd/recoverd/shardstore"
)

// The registry's metrics count its shards and leases, and pass promlint.
func TestRegistryMetrics(t *testing.T) {
	reg := embedded.NewRegistry(t.TempDir(), shardstore.Options{LeaseTTL: time.Hour}, slog.New(slog.DiscardHandler))
	defer reg.CloseAll()
	s, err := reg.Create(engine.ShardID{Index: "logs", Shard: 0}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Leases().Add("peer-n2", s.Leases().Floor(), "n2"); err != nil {
		t.Fatal(err)
	}
	pr := prometheus.NewPedanticRegistry()
	reg.RegisterMetrics(pr)
	mfs, err := pr.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetValue() + "}"
			}
			got[name] = m.GetGauge().GetValue()
		}
	}
	if got["recoverd_shards{open}"] != 1 || got["recoverd_shards{corrupt}"] != 0 || got["recoverd_retention_leases"] != 1 ||
		got["recoverd_retention_lease_ttl_seconds"] != 3600 || got["recoverd_retention_lease_expiry_seconds"] <= 3500 {
		t.Errorf("metrics %v", got)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
