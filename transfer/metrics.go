package transfer

import "github.com/prometheus/client_golang/prometheus"

// RegisterMetrics exports the source side of the peer API on reg (never
// the global registry): what this node sent to recovering peers and the
// commit pins it holds for them. The values are the server's counters
// (Stats), read at each scrape.
func (s *PeerServer) RegisterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "recoverd_peer_sent_bytes_total",
			Help: "File bytes this node sent to recovering peers, as on the wire."},
			func() float64 { return float64(s.Stats().FileWireBytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "recoverd_peer_data_streams_total",
			Help: "FetchFile requests this node served on a data connection rather than over gRPC."},
			func() float64 { return float64(s.Stats().DataStreams) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "recoverd_peer_sent_ops_total",
			Help: "Ops this node sent to recovering peers."},
			func() float64 { return float64(s.Stats().Ops) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "recoverd_commit_pins",
			Help: "Commit pins this node holds for recovering peers."},
			func() float64 { return float64(s.Stats().Pins) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "recoverd_commit_pins_peak",
			Help: "The most commit pins this node held at once since it started: whether --max-outgoing was reached, even between two scrapes."},
			func() float64 { return float64(s.Stats().PeakPins) }),
	)
}
