package embedded

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics exports on reg (never the global registry) what the
// registry's shards hold, read at each scrape:
//
//   - recoverd_shards{state}: shards open, unavailable (on disk, not
//     readable now, opened again on their next access) and corrupt (moved
//     aside by the next recovery onto the node);
//   - recoverd_retention_leases: the live retention leases on them;
//   - recoverd_retention_lease_ttl_seconds and
//     recoverd_retention_lease_expiry_seconds: the lease TTL, and how far
//     the first lease is from expiring. A holder renews its lease at a
//     third of the TTL, so the first expiry stays two thirds of the TTL
//     away while renewals work (the deploy/ alert fires below a quarter).
//
// The metric names are recoverd's: recoverd registers them when it runs
// the reference engine in process.
func (r *Registry) RegisterMetrics(reg prometheus.Registerer) {
	for _, state := range []string{"open", "unavailable", "corrupt"} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "recoverd_shards",
			Help:        "Shards on this node by state: open, unavailable (not readable now, retried on access), corrupt.",
			ConstLabels: prometheus.Labels{"state": state}},
			func() float64 { return float64(r.Count(state)) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "recoverd_shards_unscanned",
		Help: "Shards on disk not opened yet since the node started: it opens each once in the background, and any on its first access."},
		func() float64 { return float64(r.Unscanned()) }))
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "recoverd_retention_leases",
			Help: "Retention leases held on this node's shards."},
			func() float64 {
				n := 0
				for _, s := range r.List() {
					n += len(s.Leases().List())
				}
				return float64(n)
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "recoverd_retention_lease_ttl_seconds",
			Help: "Lifetime of a retention lease on this node without renewal (--lease-ttl)."},
			func() float64 { return r.leaseTTL().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "recoverd_retention_lease_expiry_seconds",
			Help: "Seconds until the first retention lease on this node's shards expires unless renewed; the lease TTL when none is held."},
			func() float64 {
				left := r.leaseTTL()
				for _, s := range r.List() {
					if at, ok := s.Leases().EarliestExpiry(); ok {
						left = min(left, time.Until(at))
					}
				}
				return left.Seconds()
			}),
	)
}

// leaseTTL is the lease TTL of the registry's shards: its options', or
// when they leave it to shardstore's default, an open shard's.
func (r *Registry) leaseTTL() time.Duration {
	if r.opts.LeaseTTL > 0 {
		return r.opts.LeaseTTL
	}
	for _, s := range r.List() {
		return s.Leases().TTL()
	}
	return 0
}
