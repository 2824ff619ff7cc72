package cleanup

import "github.com/prometheus/client_golang/prometheus"

// metrics are the cleanup counters, registered on the registry the daemon
// passes in (never the global one).
type metrics struct {
	removals *prometheus.CounterVec
	failures *prometheus.CounterVec
	runs     prometheus.Counter
	lastRun  prometheus.Gauge
}

// Steps a failure is counted under.
const (
	stepShard       = "shard" // a shard's sweep (its files and leases)
	stepUncommitted = "uncommitted"
	stepRepository  = "repository"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		removals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoverd_cleanup_removals_total",
			Help: "Leftovers the cleanup sweep removed, by kind (staging, temp, unreferenced, lease, uncommitted, upload, snapshot_blob, repo_temp)."}, []string{"kind"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoverd_cleanup_failures_total",
			Help: "Cleanup steps that failed or were skipped because something could not be read, by step (shard, uncommitted, repository)."}, []string{"step"}),
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recoverd_cleanup_runs_total", Help: "Cleanup sweeps run."}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recoverd_cleanup_last_run_timestamp_seconds", Help: "Unix time the last cleanup sweep finished."}),
	}
	// Every series exists from the start, at zero.
	for _, k := range Kinds {
		m.removals.WithLabelValues(string(k))
	}
	for _, s := range []string{stepShard, stepUncommitted, stepRepository} {
		m.failures.WithLabelValues(s)
	}
	if reg != nil {
		reg.MustRegister(m.removals, m.failures, m.runs, m.lastRun)
	}
	return m
}
