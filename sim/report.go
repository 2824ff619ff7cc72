package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// FailureResult is one failure event.
type FailureResult struct {
	Spec          string
	Nodes         int
	Lost          int
	Unrecoverable int
	Start         float64
	Redundant     float64 // seconds from the failure to its last copy rebuilt; -1 if never
}

// Result is what a run measured.
type Result struct {
	Config     Config `json:"-"`
	Shards     int
	MeanShard  float64 // bytes
	Prefixes   int
	Background background `json:"-"`
	Done       bool
	Failures   []FailureResult
	Lost       int
	// Unrecoverable counts shards that lost every copy.
	Unrecoverable int

	// TimeToRedundancy: from the first failure to the last copy rebuilt
	// (-1: not within MaxTime). CopyP50/P99: per copy, from its failure.
	TimeToRedundancy, CopyP50, CopyP99 float64
	Plans                              [4]int // peer, hybrid, snapshot, ops-only
	BytesPeer, BytesRepo, BytesOps     float64
	Wasted                             float64
	// Requests by kind (recoveries), 503s, and per-second figures over the
	// recovery: GET class (LIST, GET, HEAD) in total and on the busiest
	// prefix, recoveries only; background rates are added in the report.
	Requests                  [numKinds]int64
	SlowDowns                 int64
	PeakGET, P99GET           float64
	PeakHot, P99Hot           float64
	Fallbacks, Handoffs       int
	PlanUnavailable           int
	PinRefusals               int
	PinWaitFailures           int
	PeakDownloads             int
	PeakGetStreams            int
	BusyMin, BusyP50, BusyMax float64 // seconds, surviving nodes
	BusyP99                   float64
	ThrottleUtil              float64 // mean over surviving nodes, of the recovery's duration
	// ConservationError: the largest |bytes moved - bytes dropped - bytes
	// planned| / bytes planned over rebuilt copies.
	ConservationError float64
	Violations        []string
	WallSeconds       float64

	Done_    []float64 `json:"-"` // per copy: seconds from its failure to rebuilt
	Timeline []string  `json:"-"` // CSV lines, header first
}

// conserve checks one rebuilt copy's bytes: what moved, less what was
// dropped, is what its final plan needed.
func (res *Result) conserve(r *recovery) {
	peer, repo := r.plan.bytes()
	want := float64(peer + repo + r.plan.opsBytes)
	got := r.f.bytesPeer + r.f.bytesRepo + r.f.bytesOps - r.f.wastedFiles - r.f.wastedOps
	files := r.f.bytesPeer + r.f.bytesRepo - r.f.wastedFiles - float64(peer+repo)
	// Relative: the sums run over millions of float additions.
	res.ConservationError = max(res.ConservationError, math.Abs(got-want)/max(want, 1), math.Abs(files)/max(want, 1))
	res.Wasted += r.f.wastedFiles + r.f.wastedOps
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// finish computes the summary figures.
func (e *engine) finish() {
	res := &e.res
	end := e.now
	if res.Done && len(res.Failures) > 0 {
		last := res.Failures[len(res.Failures)-1]
		res.TimeToRedundancy = last.Start + last.Redundant - e.failureStart
		end = last.Start + last.Redundant
	} else {
		res.TimeToRedundancy = -1
		for i := range res.Failures {
			if res.Failures[i].Redundant == 0 {
				res.Failures[i].Redundant = -1
			}
		}
	}
	res.CopyP50, res.CopyP99 = percentile(res.Done_, 0.5), percentile(res.Done_, 0.99)
	res.Requests = e.st.total
	res.SlowDowns = e.st.slow
	var get, hot []float64
	for sec := int(e.failureStart); sec <= int(end) && sec < len(e.st.series); sec++ {
		ss := e.st.series[sec]
		get = append(get, float64(ss.n[reqList]+ss.n[reqGet]+ss.n[reqHead]))
		hot = append(hot, float64(ss.hot))
	}
	if len(get) > 0 {
		res.PeakGET, res.P99GET = slices.Max(get), percentile(get, 0.99)
		res.PeakHot, res.P99Hot = slices.Max(hot), percentile(hot, 0.99)
	}
	var busy []float64
	util, n := 0.0, 0
	dur := end - e.failureStart
	for i := range e.nodes {
		if e.deadNode[i] {
			continue
		}
		busy = append(busy, e.busy[i])
		if e.cfg.Throttle > 0 && dur > 0 {
			util += e.throttleUsed[i] / (e.cfg.Throttle * dur)
			n++
		}
	}
	if len(busy) > 0 {
		res.BusyMin, res.BusyMax = slices.Min(busy), slices.Max(busy)
		res.BusyP50, res.BusyP99 = percentile(busy, 0.5), percentile(busy, 0.99)
	}
	if n > 0 {
		res.ThrottleUtil = util / float64(n)
	}
	if e.violationCount > len(res.Violations) {
		res.Violations = append(res.Violations, fmt.Sprintf("... %d violations in all", e.violationCount))
	}
	if e.tl != nil {
		e.tl.sample(e, end, true)
		res.Timeline = append([]string{timelineHeader}, e.tl.rows...)
	}
}

// dur prints seconds as a short duration.
func dur(s float64) string {
	if s < 0 {
		return "never"
	}
	d := time.Duration(s * float64(time.Second))
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d >= time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Millisecond).String()
}

func tb(b float64) string {
	switch {
	case b >= 1e15:
		return fmt.Sprintf("%.2f PB", b/1e15)
	case b >= 1e12:
		return fmt.Sprintf("%.1f TB", b/1e12)
	case b >= 1e9:
		return fmt.Sprintf("%.1f GB", b/1e9)
	}
	return fmt.Sprintf("%.1f MB", b/1e6)
}

func rate(b float64) string {
	if b == 0 {
		return "unlimited"
	}
	return strings.TrimSuffix(tb(b), "B") + "B/s"
}

func num(x float64) string {
	s := fmt.Sprintf("%.0f", x)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// write prints one run in full.
func (res *Result) write(w io.Writer) {
	c := &res.Config
	bg := res.Background
	fmt.Fprintf(w, "fleet      %d nodes x %d shard copies = %s shards of %d copies, %s up to %s (mean %s, %s in all); racks of %d, %d zones\n",
		c.Nodes, c.ShardsPerNode, num(float64(res.Shards)), c.Copies, c.ShardSize, ibytes(c.MaxShardSize), tb(res.MeanShard), tb(res.MeanShard*float64(res.Shards*c.Copies)), c.RackSize, c.Zones)
	for _, f := range res.Failures {
		ret := c.Return
		if _, r, ok := strings.Cut(f.Spec, "@"); ok {
			ret = r
		}
		fmt.Fprintf(w, "failure    %s: %d nodes, %s copies to rebuild (%d shards lost every copy), rebuilt %s, full redundancy after %s\n",
			f.Spec, f.Nodes, num(float64(f.Lost)), f.Unrecoverable, ret, dur(f.Redundant))
	}
	fmt.Fprintf(w, "recoverd   throttle %s, max-recoveries %d, max-outgoing %d, max-snapshot-downloads %d, parallel-files %d, parts %s x %d, use-snapshots %v\n",
		rate(c.Throttle), c.MaxRecoveries, c.MaxOutgoing, c.MaxSnapshotDownloads, c.ParallelFiles, ibytes(float64(c.PartSize)), c.PartConcurrency, c.UseSnapshots)
	part := fmt.Sprintf("prefix depth %d", c.PrefixDepth)
	if c.PrefixChars > 0 {
		part = fmt.Sprintf("partitioned on %d leading characters", c.PrefixChars)
	}
	fmt.Fprintf(w, "store      layout %s, %s (%s prefixes), per prefix %s GET / %s PUT per s, latency %s\n",
		c.Layout, part, num(float64(res.Prefixes)), limit(c.S3GetRPS), limit(c.S3PutRPS), dur(c.S3Latency))
	fmt.Fprintln(w)
	if len(res.Failures) == 0 {
		fmt.Fprintf(w, "GET-class req/s, total      background %s (snapshots %s, cleanup sweep %s: LIST %s, GET %s)\n",
			num(bg.get), num(sum(bg.snapshot[:reqPut])), num(sum(bg.cleanup[:reqPut])), num(bg.cleanup[reqList]), num(bg.cleanup[reqGet]))
		fmt.Fprintf(w, "PUT-class req/s, total      background %s (snapshots: PUT %s, POST %s, DELETE %s)\n",
			num(bg.put), num(bg.snapshot[reqPut]), num(bg.snapshot[reqPost]), num(bg.snapshot[reqDelete]))
		fmt.Fprintf(w, "per prefix                  %.1f GET-class, %.1f PUT-class req/s over %s prefixes\n",
			bg.get/float64(res.Prefixes), bg.put/float64(res.Prefixes), num(float64(res.Prefixes)))
		if bg.cleanupPerNode > 0 {
			fmt.Fprintf(w, "cleanup sweep (%s)          %s requests per node per sweep\n", c.CleanupSweep, num(bg.cleanupPerNode))
		}
		return
	}
	fmt.Fprintf(w, "time to full redundancy     %s\n", dur(res.TimeToRedundancy))
	fmt.Fprintf(w, "copies rebuilt              %s; p50 %s, p99 %s after their failure\n", num(float64(len(res.Done_))), dur(res.CopyP50), dur(res.CopyP99))
	fmt.Fprintf(w, "plans                       peer %d, hybrid %d, snapshot %d, ops-only %d\n", res.Plans[0], res.Plans[1], res.Plans[2], res.Plans[3])
	fmt.Fprintf(w, "bytes                       from peers %s, from the repository %s, ops %s, dropped %s\n", tb(res.BytesPeer), tb(res.BytesRepo), tb(res.BytesOps), tb(res.Wasted))
	fmt.Fprintf(w, "GET-class req/s, total      recoveries peak %s, p99 %s; background %s (snapshots %s, cleanup sweep %s)\n",
		num(res.PeakGET), num(res.P99GET), num(bg.get), num(sum(bg.snapshot[:reqPut])), num(sum(bg.cleanup[:reqPut])))
	fmt.Fprintf(w, "PUT-class req/s, total      background %s (snapshots)\n", num(bg.put))
	fmt.Fprintf(w, "busiest prefix, GET req/s   recoveries peak %s, p99 %s; + background %.1f per prefix (limit %s)\n",
		num(res.PeakHot), num(res.P99Hot), bg.get/float64(res.Prefixes), limit(c.S3GetRPS))
	fmt.Fprintf(w, "503 SlowDown                %s; snapshot plans fallen back %d, hybrid hand-offs %d, plans without the repository %d\n",
		num(float64(res.SlowDowns)), res.Fallbacks, res.Handoffs, res.PlanUnavailable)
	fmt.Fprintf(w, "pins                        %s refusals (source at --max-outgoing), %d pin-wait failures (re-issued)\n", num(float64(res.PinRefusals)), res.PinWaitFailures)
	fmt.Fprintf(w, "peak concurrent downloads   %s files, %s GET streams\n", num(float64(res.PeakDownloads)), num(float64(res.PeakGetStreams)))
	per := max(float64(len(res.Done_)), 1)
	fmt.Fprintf(w, "requests by kind            ")
	for k := range reqPut {
		fmt.Fprintf(w, "%s %s (%.1f per copy)  ", kindNames[k], num(float64(res.Requests[k])), float64(res.Requests[k])/per)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "node busy time (survivors)  min %s, p50 %s, p99 %s, max %s", dur(res.BusyMin), dur(res.BusyP50), dur(res.BusyP99), dur(res.BusyMax))
	if c.Throttle > 0 {
		fmt.Fprintf(w, "; throttle used %.0f%%", 100*res.ThrottleUtil)
	}
	fmt.Fprintln(w)
	if bg.cleanupPerNode > 0 {
		bound := ""
		if bg.cleanupBound {
			bound = fmt.Sprintf(", longer than --cleanup-interval: back to back at 1/latency = %.0f req/s per node", 1/c.S3Latency)
		}
		fmt.Fprintf(w, "cleanup sweep (%s)          %s requests per node per sweep%s\n", c.CleanupSweep, num(bg.cleanupPerNode), bound)
	}
	if c.MeasuredRedundant > 0 && res.TimeToRedundancy > 0 {
		fmt.Fprintf(w, "calibration                 predicted %s, measured %s: %+.0f%%\n", dur(res.TimeToRedundancy), dur(c.MeasuredRedundant),
			100*(res.TimeToRedundancy-c.MeasuredRedundant)/c.MeasuredRedundant)
	}
	if len(res.Violations) == 0 {
		fmt.Fprintf(w, "limits held                 yes: no node over its limits, no resource over capacity, bytes conserved (max relative error %.0e)\n", res.ConservationError)
	} else {
		fmt.Fprintf(w, "VIOLATIONS                  %s\n", strings.Join(res.Violations, "; "))
	}
	fmt.Fprintf(w, "simulated in                %.1fs\n", res.WallSeconds)
}

func limit(x float64) string {
	if x == 0 {
		return "unlimited"
	}
	return num(x)
}

func sum(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s
}
