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
	m.inFlight.Set(1)
	m.queued.Set(1)
	m.bytes.WithLabelValues("snapshot").Add(10)
	m.opsReplayed.Add(5)
	m.fallbacks.WithLabelValues("checksum").Inc()
	m.throttleWait.Add(0.5)
	m.retries.WithLabelValues("peer_stream").Inc()
	m.downloadErrors.Inc()
	m.replans.WithLabelValues("lease_lost").Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 12 {
		t.Errorf("gathered %d families, want the 12 NewMetrics registers", len(mfs))
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
