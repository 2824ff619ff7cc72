package recovery

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// Every recovery metric passes promlint, with events recorded.
func TestMetricsPassPromlint(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	m.started.WithLabelValues("peer").Inc()
	m.observeFinished("peer", StageDone, 3*time.Second)
	m.running.add(2)
	m.running.add(-1)
	m.downloading.add(3)
	m.downloading.add(-3)
	m.queued.Set(1)
	m.bytes.WithLabelValues("snapshot").Add(10)
	m.opsReplayed.Add(5)
	m.fallbacks.WithLabelValues("checksum").Inc()
	m.throttleWait.Add(0.5)
	m.retries.WithLabelValues("peer_stream").Inc()
	m.downloadErrors.Inc()
	m.replans.WithLabelValues("lease_lost").Inc()
	m.badBlobs.WithLabelValues("checksum").Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 16 {
		t.Errorf("gathered %d families, want the 16 NewMetrics registers", len(mfs))
	}
	// The peaks keep the most at once after the levels came down.
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetType().String() == "GAUGE" {
			got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	for name, want := range map[string]float64{"recoverd_recoveries_in_flight": 1, "recoverd_recoveries_in_flight_peak": 2,
		"recoverd_snapshot_downloads_in_flight": 0, "recoverd_snapshot_downloads_in_flight_peak": 3} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
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
