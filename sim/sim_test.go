package main

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

// tiny is a two-node fleet holding one shard of one file, the link
// bounded by the throttle alone and every fixed cost zero, so times can
// be computed by hand.
func tiny(t *testing.T, set map[string]string) Config {
	t.Helper()
	cfg := defaultConfig()
	base := map[string]string{
		"nodes": "2", "shards-per-node": "1", "copies": "2", "rack-size": "1", "zones": "1",
		"shard-size": "fixed:100MB", "files-per-shard": "1", "throttle": "10MB", "nic": "0", "disk": "0",
		"rpc-latency": "0s", "overhead": "0s", "s3-latency": "0s", "verify-digest": "never", "cleanup-interval": "0s",
		"return": "same", "idle-fraction": "1", "snapshot-fraction": "1",
	}
	for k, v := range set {
		base[k] = v
	}
	for k, v := range base {
		o, ok := optionByName(k)
		if !ok {
			t.Fatalf("no option %q", k)
		}
		if err := o.set(&cfg, v); err != nil {
			t.Fatalf("%s=%s: %v", k, v, err)
		}
	}
	return cfg
}

func simulate(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := Simulate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Violations) > 0 {
		t.Fatalf("violations: %v", res.Violations)
	}
	if !res.Done {
		t.Fatalf("not every copy was rebuilt within %v", cfg.MaxTime)
	}
	return res
}

// primaryNode is the node holding copy 0 of shard 0.
func primaryNode(t *testing.T, cfg Config) string {
	t.Helper()
	cl, err := newCluster(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return "nodes:" + map[int32]string{0: "0", 1: "1"}[cl.copies[0]]
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.9g, want %.9g", what, got, want)
	}
}

// A peer copy of 100 MB through 10 MB/s throttles on both nodes takes
// 10 s: the stream is charged to the source's and the target's bucket.
func TestTinyPeerByHand(t *testing.T) {
	res := simulate(t, tiny(t, map[string]string{"use-snapshots": "false", "fail": "nodes:0"}))
	near(t, "time to full redundancy", res.TimeToRedundancy, 10)
	near(t, "bytes from peers", res.BytesPeer, 100e6)
	if res.Plans != [4]int{1, 0, 0, 0} {
		t.Errorf("plans %v, want one peer plan", res.Plans)
	}
}

// Two shards from one source onto one target: with --max-outgoing 1 they
// run one after the other (20 s); with 2 they share the throttle (also
// 20 s, but both end together); with a throttle on the target only and
// two sources, they would not be serialised at all.
func TestPinLimitSerialises(t *testing.T) {
	set := map[string]string{"use-snapshots": "false", "shards-per-node": "2", "max-outgoing": "1", "fail": "nodes:0"}
	res := simulate(t, tiny(t, set))
	// The second recovery is refused a pin at t=0 and sleeps 200ms,
	// 400ms, 800ms, 1.6s, 3.2s, 5s: it asks again at 0.2, 0.6, 1.4, 3 and
	// 6.2 (refused: six refusals in all) and 11.2, when it gets the pin
	// the first gave back at 10; then it takes 10 s.
	near(t, "time to full redundancy", res.TimeToRedundancy, 21.2)
	if res.PinRefusals != 6 {
		t.Errorf("%d pin refusals, want 6", res.PinRefusals)
	}
	set["max-outgoing"] = "2"
	res = simulate(t, tiny(t, set))
	near(t, "time to full redundancy with two pins", res.TimeToRedundancy, 20)
	near(t, "copy p50", res.CopyP50, 20)
}

// Losing the replica of an idle shard: the snapshot holds the primary's
// files, so the plan is hybrid with every byte from the repository. The
// requests are the code's: snapshot.Latest LISTs the manifests and GETs
// the newest; the download HEADs the blob and GETs 64 MiB in four 16 MiB
// ranges, four at once, each starting after the latency.
func TestTinySnapshotRequestsByHand(t *testing.T) {
	cfg := tiny(t, map[string]string{"shard-size": "fixed:64MiB", "s3-latency": "50ms"})
	primary := primaryNode(t, cfg)
	cfg.Fail = map[string]string{"nodes:0": "nodes:1", "nodes:1": "nodes:0"}[primary] // lose the replica
	res := simulate(t, cfg)
	if res.Plans != [4]int{0, 1, 0, 0} {
		t.Errorf("plans %v, want one hybrid plan", res.Plans)
	}
	want := [numKinds]int64{reqList: 1, reqGet: 5, reqHead: 1}
	if res.Requests != want {
		t.Errorf("requests %v, want %v", res.Requests, want)
	}
	// LIST, GET manifest, HEAD, GET: 4 latencies, then 64 MiB at 10 MB/s.
	near(t, "time to full redundancy", res.TimeToRedundancy, 4*0.05+float64(64<<20)/10e6)
	near(t, "bytes from the repository", res.BytesRepo, 64<<20)
	if res.PeakDownloads != 1 || res.PeakGetStreams != 4 {
		t.Errorf("peak downloads %d, GET streams %d; want 1 and 4", res.PeakDownloads, res.PeakGetStreams)
	}

	// Losing the primary instead: the source is the promoted replica,
	// whose files differ from the snapshot's; the snapshot is logically
	// equivalent, so the plan restores it (and skips the digests).
	cfg.Fail = primary
	res = simulate(t, cfg)
	if res.Plans != [4]int{0, 0, 1, 0} {
		t.Errorf("plans %v, want one snapshot plan", res.Plans)
	}
}

// The same seed gives the same run, event for event.
func TestDeterministic(t *testing.T) {
	cfg := defaultConfig()
	cfg.Nodes, cfg.ShardsPerNode, cfg.RackSize, cfg.Fail = 60, 40, 10, "rack:1"
	cfg.Timeline, cfg.TimelineEvery = "x", 5
	cfg.S3GetRPS, cfg.PrefixDepth = 40, 1 // SlowDowns and their random backoff
	a, b := simulate(t, cfg), simulate(t, cfg)
	a.WallSeconds, b.WallSeconds = 0, 0
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two runs with seed %d differ:\n%+v\n%+v", cfg.Seed, a, b)
	}
	if a.SlowDowns == 0 {
		t.Errorf("the run met no SlowDown; the test means to cover the random backoff")
	}
	cfg.Seed++
	c := simulate(t, cfg)
	if c.TimeToRedundancy == a.TimeToRedundancy && c.BytesRepo == a.BytesRepo {
		t.Errorf("another seed gave the same run")
	}
}

// Under tight limits every node limit, every resource and every prefix
// stays within bounds, every copy is rebuilt, and the bytes add up: what
// moved less what fallbacks dropped is what the final plans needed.
func TestLimitsAndConservation(t *testing.T) {
	cfg := defaultConfig()
	cfg.Nodes, cfg.ShardsPerNode, cfg.RackSize, cfg.Fail = 60, 40, 10, "rack:0;rack:2"
	cfg.MaxRecoveries, cfg.MaxOutgoing, cfg.MaxSnapshotDownloads = 1, 1, 2
	cfg.Throttle = 50e6
	// One partition at 30 GET/s and a short retry budget: downloads give
	// up, snapshot plans fall back, hybrid plans hand files over.
	cfg.S3GetRPS, cfg.PrefixDepth, cfg.RetryBudget, cfg.CleanupInterval = 30, 0, 2, 0
	res := simulate(t, cfg)
	if res.Fallbacks == 0 || res.Handoffs == 0 || res.PlanUnavailable == 0 {
		t.Errorf("fallbacks %d, hand-offs %d, plans without the repository %d: the test means to cover all three",
			res.Fallbacks, res.Handoffs, res.PlanUnavailable)
	}
	if res.PeakHot > 30 {
		t.Errorf("the busiest prefix served %v requests in a second, limit 30", res.PeakHot)
	}
	if res.ConservationError > 1e-9 {
		t.Errorf("bytes not conserved: off by %v of a copy", res.ConservationError)
	}
	if res.Wasted == 0 {
		t.Errorf("nothing dropped though plans fell back")
	}
	if len(res.Done_) != res.Lost {
		t.Errorf("%d copies rebuilt of %d lost", len(res.Done_), res.Lost)
	}
	if len(res.Failures) != 2 || res.Failures[1].Start < res.Failures[0].Redundant {
		t.Errorf("failures %+v: the second must start once the first is recovered", res.Failures)
	}
}

// The audit is what the limit tests rely on: it must see a violation.
func TestAuditCatchesOverload(t *testing.T) {
	cfg := tiny(t, map[string]string{"use-snapshots": "false", "fail": "nodes:0"})
	e, err := newEngine(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.nodes[1].pins = int32(cfg.MaxOutgoing) + 1
	e.audit()
	g := e.newGroup([2]int32{0, -1}, 0, []int32{e.resID(0, resThrottle)}, []float64{1})
	e.addLane(g, lane{rem: 1e9})
	e.allocate(1)
	e.groups[g].x *= 2 // as if the allocation had given twice the bucket
	e.checkCapacity()
	if len(e.res.Violations) < 2 || !strings.Contains(e.res.Violations[0], "pins") || !strings.Contains(e.res.Violations[1], "capacity") {
		t.Errorf("violations %q", e.res.Violations)
	}
}

// The store's bandwidth per prefix bounds a download like any other
// resource: 64 MiB at 2 MB/s.
func TestPrefixBandwidth(t *testing.T) {
	cfg := tiny(t, map[string]string{"shard-size": "fixed:64MiB", "s3-prefix-bandwidth": "2MB"})
	primary := primaryNode(t, cfg)
	cfg.Fail = map[string]string{"nodes:0": "nodes:1", "nodes:1": "nodes:0"}[primary]
	res := simulate(t, cfg)
	near(t, "time to full redundancy", res.TimeToRedundancy, float64(64<<20)/2e6)
}

// BenchmarkRackLoss: the rack scenario of SCALE.md at full size.
func BenchmarkRackLoss(b *testing.B) {
	cfg := defaultConfig()
	cfg.Fail = "rack:0"
	for b.Loop() {
		if _, err := Simulate(cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// A failure may name where its copies are rebuilt: the node coming back
// empty gets a peer copy, then coming back with its data only the ops.
func TestReturnPerFailure(t *testing.T) {
	res := simulate(t, tiny(t, map[string]string{"use-snapshots": "false", "fail": "nodes:0@same;nodes:0@same-with-data"}))
	if res.Plans != [4]int{1, 0, 0, 1} {
		t.Errorf("plans %v, want a peer plan, then an ops-only plan", res.Plans)
	}
	near(t, "first failure", res.Failures[0].Redundant, 10)
	if _, err := Simulate(tiny(t, map[string]string{"fail": "nodes:0@elsewhere"})); err == nil || !strings.Contains(err.Error(), `return "elsewhere"`) {
		t.Errorf("a failure with an unknown return: %v", err)
	}
}
