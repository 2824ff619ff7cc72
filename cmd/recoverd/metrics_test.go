package main

import (
	"testing"
	"time"

	"github.com/recoverd/recoverd/internal/buildinfo"
	"github.com/recoverd/recoverd/shardstore"
)

// TestServeExportsBuildLeaseAndRepositoryHealth: a node exports
// recoverd_build_info for its build, the retention lease TTL and how far
// the first lease is from expiring (here a lease last renewed 50 minutes
// ago under a 1h TTL: 10 minutes left, below a quarter of the TTL, what
// the deploy/ alert fires on), and recoverd_s3_repository_up.
func TestServeExportsBuildLeaseAndRepositoryHealth(t *testing.T) {
	data := t.TempDir()
	id := shardstore.ShardID{Index: "logs", Shard: 0}
	renewed := time.Now().Add(-50 * time.Minute)
	sh, err := shardstore.Open(data, id, shardstore.Options{Create: true, LeaseTTL: time.Hour, Now: func() time.Time { return renewed }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Leases().Add("peer-stalled", sh.Leases().Floor(), "n9"); err != nil {
		t.Fatal(err)
	}
	sh.Close()

	cfg := defaultConfig()
	cfg.Data, cfg.LeaseTTL, cfg.NodeID = data, time.Hour, "n1"
	cfg, _ = startServe(t, cfg, &syncBuf{})
	_, mfs := scrape(t, cfg)

	bi := buildinfo.Read()
	mf := mfs["recoverd_build_info"]
	if mf == nil || len(mf.GetMetric()) != 1 || mf.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("recoverd_build_info: %v", mf)
	}
	labels := map[string]string{}
	for _, l := range mf.GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["version"] != bi.Version || labels["revision"] != bi.Revision || labels["goversion"] != bi.GoVersion {
		t.Fatalf("recoverd_build_info labels %v, want %+v", labels, bi)
	}

	ttl, ok1 := series(mfs, "recoverd_retention_lease_ttl_seconds", "", "")
	left, ok2 := series(mfs, "recoverd_retention_lease_expiry_seconds", "", "")
	if !ok1 || !ok2 || ttl != 3600 || left <= 0 || left > 600 || left >= ttl/4 {
		t.Fatalf("lease ttl %v (%v), first expiry in %v s (%v): want 3600 and at most 600", ttl, ok1, left, ok2)
	}
	if up, ok := series(mfs, "recoverd_s3_repository_up", "", ""); !ok || up != 1 {
		t.Fatalf("recoverd_s3_repository_up = %v (%v)", up, ok)
	}
}
