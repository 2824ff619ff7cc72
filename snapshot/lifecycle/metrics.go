package lifecycle

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/snapshot"
)

// Triggers of a snapshot, the trigger label of its metrics.
const (
	TriggerAPI    = "api"    // CreateSnapshot (recoverctl snapshot create --node)
	TriggerPolicy = "policy" // the snapshot policy
)

// Failure causes, the cause label of recoverd_snapshot_failures_total.
const (
	CauseRepository = "repository_unavailable" // the repository did not answer
	CauseShard      = "shard_unavailable"      // the shard could not be had or read
	CauseRecovery   = "recovery_running"       // a recovery rebuilds the shard here
	CauseChecksum   = "checksum"               // a local file failed its checksum
	CauseConcurrent = "concurrent_deletion"    // another process kept deleting its blobs
	CauseCanceled   = "canceled"               // the node is stopping
	CauseOther      = "other"
	CauseUnreadable = "manifest_unreadable" // retention: some manifest cannot be read
)

// Cause classifies the error of a failed snapshot or retention run.
func Cause(err error) string {
	switch {
	case errors.Is(err, ErrRecoveryRunning):
		return CauseRecovery
	case errors.Is(err, snapshot.ErrCorruptManifest):
		return CauseUnreadable
	case errors.Is(err, snapshot.ErrUnavailable), errors.Is(err, snapshot.ErrAccessDenied):
		return CauseRepository
	case errors.Is(err, snapshot.ErrChecksum):
		return CauseChecksum
	case errors.Is(err, snapshot.ErrConcurrentDeletion):
		return CauseConcurrent
	case errors.Is(err, engine.ErrNotFound), errors.Is(err, engine.ErrNoCommit), errors.Is(err, engine.ErrUnavailable),
		errors.Is(err, engine.ErrCorrupt), errors.Is(err, engine.ErrClosed), errors.Is(err, engine.ErrPinLost):
		return CauseShard
	case errors.Is(err, context.Canceled):
		return CauseCanceled
	}
	return CauseOther
}

// Metrics are the snapshot metrics of a node (recoverd_snapshot_*).
type Metrics struct {
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
	files    *prometheus.CounterVec
	failures *prometheus.CounterVec
	runs     *prometheus.CounterVec
	deleted  prometheus.Counter
}

// NewMetrics registers the snapshot metrics on reg; the age of each
// shard's latest snapshot is registered by the policy (Policy.Collector).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "recoverd_snapshot_duration_seconds",
			Help:    "Time to create a snapshot that succeeded, by trigger (api, policy).",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16)}, []string{"trigger"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "recoverd_snapshot_bytes_total",
			Help: "Bytes of the files of the snapshots created here, by kind: uploaded (new) or already in the repository (reused)."}, []string{"kind"}),
		files: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "recoverd_snapshot_files_total",
			Help: "Files of the snapshots created here, by kind: uploaded (new) or already in the repository (reused)."}, []string{"kind"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "recoverd_snapshot_failures_total",
			Help: "Snapshots and retention runs that failed, by step (snapshot, retention) and cause."}, []string{"step", "cause"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "recoverd_snapshot_policy_runs_total",
			Help: "Runs of the snapshot policy per shard, by result: success, failure, skipped (a replica under primaries-only, a shard being recovered)."}, []string{"result"}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{Name: "recoverd_snapshot_retention_deleted_total",
			Help: "Snapshots the policy's retention (keep, max age) deleted."}),
	}
	reg.MustRegister(m.duration, m.bytes, m.files, m.failures, m.runs, m.deleted)
	for _, k := range []string{"new", "reused"} {
		m.bytes.WithLabelValues(k)
		m.files.WithLabelValues(k)
	}
	for _, r := range []string{"success", "failure", "skipped"} {
		m.runs.WithLabelValues(r)
	}
	for _, c := range []string{CauseRepository, CauseShard, CauseChecksum, CauseConcurrent, CauseOther} {
		m.failures.WithLabelValues("snapshot", c)
	}
	m.failures.WithLabelValues("retention", CauseUnreadable)
	m.failures.WithLabelValues("retention", CauseRepository)
	return m
}

func (m *Metrics) observe(trigger string, res *snapshot.CreateResult, took time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.failures.WithLabelValues("snapshot", Cause(err)).Inc()
		return
	}
	m.duration.WithLabelValues(trigger).Observe(took.Seconds())
	m.bytes.WithLabelValues("new").Add(float64(res.UploadedBytes))
	m.bytes.WithLabelValues("reused").Add(float64(res.ReusedBytes))
	m.files.WithLabelValues("new").Add(float64(res.UploadedFiles))
	m.files.WithLabelValues("reused").Add(float64(res.ReusedFiles))
}

func (m *Metrics) run(result string) {
	if m != nil {
		m.runs.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) retentionFailed(err error) {
	if m != nil {
		m.failures.WithLabelValues("retention", Cause(err)).Inc()
	}
}

func (m *Metrics) retentionDeleted(n int) {
	if m != nil {
		m.deleted.Add(float64(n))
	}
}
