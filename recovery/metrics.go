package recovery

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the recovery counters a node exports. They are registered on
// the registry the daemon passes in, never on the global one.
type Metrics struct {
	started        *prometheus.CounterVec
	finished       *prometheus.CounterVec
	running        level // recoveries holding a slot: recoverd_recoveries_in_flight
	downloading    level // snapshot files downloading
	queued         prometheus.Gauge
	duration       *prometheus.HistogramVec
	bytes          *prometheus.CounterVec
	opsReplayed    prometheus.Counter
	fallbacks      *prometheus.CounterVec
	throttleWait   prometheus.Counter
	retries        *prometheus.CounterVec
	downloadErrors prometheus.Counter
	replans        *prometheus.CounterVec
	badBlobs       *prometheus.CounterVec
}

// NewMetrics creates the recovery metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoverd_recoveries_started_total", Help: "Recoveries started on this node, by the kind of their first plan (none when they ended before planning)."}, []string{"kind"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoverd_recoveries_finished_total", Help: "Recoveries finished on this node, by plan kind and result (done, failed, cancelled)."}, []string{"kind", "result"}),
		running: level{
			now: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "recoverd_recoveries_in_flight", Help: "Recoveries running on this node (past the queue)."}),
			most: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "recoverd_recoveries_in_flight_peak", Help: "The most recoveries running at once on this node since it started: whether --max-recoveries was reached, even between two scrapes."}),
		},
		downloading: level{
			now: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "recoverd_snapshot_downloads_in_flight", Help: "Snapshot files downloading on this node (at most --max-snapshot-downloads)."}),
			most: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "recoverd_snapshot_downloads_in_flight_peak", Help: "The most snapshot files downloading at once on this node since it started: whether --max-snapshot-downloads was reached, even between two scrapes."}),
		},
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recoverd_recoveries_queued", Help: "Recoveries waiting for a slot under the node limit."}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "recoverd_recovery_duration_seconds", Help: "Duration of finished recoveries, by plan kind.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16)}, []string{"kind"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoverd_recovered_bytes_total", Help: "File bytes of recoveries by where they came from: peer, snapshot, or reused on the target."}, []string{"source"}),
		opsReplayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recoverd_ops_replayed_total", Help: "Ops replayed onto recovered copies (staged with the files or caught up)."}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoverd_fallbacks_total", Help: "Snapshot plans (or hybrid files) that fell back to the peer, by cause."}, []string{"cause"}),
		throttleWait: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recoverd_throttle_wait_seconds_total", Help: "Time recoveries waited for the node's bandwidth budget."}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoverd_retries_total", Help: "Transfers resumed after a transient error, by cause."}, []string{"cause"}),
		downloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recoverd_snapshot_download_errors_total", Help: "Snapshot file downloads that failed (after their retries)."}),
		replans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoverd_replans_total", Help: "Recoveries planned again, by cause (lease lost, ops compacted, pin lost)."}, []string{"cause"}),
		badBlobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoverd_snapshot_bad_blobs_total", Help: "Snapshot blobs recoveries found bad and marked in the repository, by cause (checksum: corrupt; missing)."}, []string{"cause"}),
	}
	m.initLabels()
	if reg != nil {
		reg.MustRegister(m.started, m.finished, m.running.now, m.running.most, m.downloading.now, m.downloading.most, m.queued, m.duration, m.bytes, m.opsReplayed,
			m.fallbacks, m.throttleWait, m.retries, m.downloadErrors, m.replans, m.badBlobs)
	}
	return m
}

// The label values the node knows in advance. Every series they make
// exists from the first scrape at zero, so that rates and alerts on them
// work before the first event (an absent series is not a zero rate).
var (
	metricKinds    = []string{"ops-only", "peer", "snapshot", "hybrid"} // planner.Kind of plans that run
	metricEarly    = []string{"refused", "none"}                        // refused by the planner, or ended before planning
	metricResults  = []string{string(StageDone), string(StageFailed), string(StageCancelled)}
	metricSources  = []string{"peer", "snapshot", "reused"}
	fallbackCauses = []string{"checksum", "not_found", "unavailable", "deadline", "other"} // fallbackCause
	retryCauses    = []string{"source_call", "pin_renewal", "lease_renewal", "peer_stream", "ops_stream"}
	replanCauses   = []string{"lease_lost", "ops_compacted", "pin_lost", "other"} // causeOf
)

// initLabels creates every known series at zero.
func (m *Metrics) initLabels() {
	for _, k := range append(append([]string{}, metricKinds...), metricEarly...) {
		m.started.WithLabelValues(k)
		m.duration.WithLabelValues(k)
		for _, r := range metricResults {
			if r != string(StageDone) || !slices.Contains(metricEarly, k) {
				m.finished.WithLabelValues(k, r)
			}
		}
	}
	for _, s := range metricSources {
		m.bytes.WithLabelValues(s)
	}
	for _, c := range fallbackCauses {
		m.fallbacks.WithLabelValues(c)
	}
	for _, c := range retryCauses {
		m.retries.WithLabelValues(c)
	}
	for _, c := range replanCauses {
		m.replans.WithLabelValues(c)
	}
	for _, c := range badBlobCauses {
		m.badBlobs.WithLabelValues(c)
	}
}

func (m *Metrics) observeFinished(kind string, stage Stage, d time.Duration) {
	m.finished.WithLabelValues(kind, string(stage)).Inc()
	m.duration.WithLabelValues(kind).Observe(d.Seconds())
}

// level counts what runs at once on the node, and the most that ran at
// once since the process started. Both are gauges: the peak says whether
// a limit was reached between two scrapes, which the current value,
// scraped every few seconds, cannot.
type level struct {
	mu        sync.Mutex
	n, peak   int
	now, most prometheus.Gauge
}

func (l *level) add(d int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n += d
	l.now.Set(float64(l.n))
	if l.n > l.peak {
		l.peak = l.n
		l.most.Set(float64(l.peak))
	}
}
