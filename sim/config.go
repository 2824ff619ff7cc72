package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/recoverd/recoverd/internal/retry"
)

// Config is one simulated scenario. Times are in seconds, sizes in bytes,
// rates in bytes or requests per second; 0 means unlimited where a limit
// is meant.
type Config struct {
	// The fleet.
	Nodes, ShardsPerNode, Copies, RackSize, Zones, ShardsPerIndex int
	ShardSize                                                     Dist
	MaxShardSize                                                  float64
	FilesPerShard                                                 int
	FileRatio                                                     float64
	Seed                                                          uint64

	// recoverd's per-node settings (cmd/recoverd/config.go) and hardware.
	Throttle, NIC, Disk                                             float64
	MaxRecoveries, MaxOutgoing, MaxSnapshotDownloads, ParallelFiles int
	PartSize                                                        int64
	PartConcurrency                                                 int
	PinWait, PinJitter                                              float64
	VerifyDigest                                                    string
	PeerWireRatio                                                   float64
	UseSnapshots                                                    bool
	Overhead, RPCLatency                                            float64

	// The object store.
	S3GetRPS, S3PutRPS, S3TotalGetRPS, S3TotalPutRPS float64
	S3Bandwidth, S3PrefixBandwidth, S3StreamRate     float64
	S3Latency                                        float64
	Layout                                           string
	HashPrefixes, PrefixDepth, PrefixChars           int
	RetryInitial, RetryMax, RetryBudget              float64

	// What the repository holds, and the background load on it.
	SnapshotFraction, IdleFraction, Churn float64
	OpsSinceSnapshot, OpBytes             int64
	SnapshotInterval                      float64
	SnapshotKeep                          int
	CleanupInterval                       float64
	CleanupSweep                          string

	// The failure and the orchestrator.
	Fail              string
	Return            string
	Detect, Reissue   float64
	OpsWhileDown      int64
	DT, MaxTime       float64
	Timeline          string
	TimelineEvery     float64
	MeasuredRedundant float64 // calibration: the real cluster's time to full redundancy
}

func defaultConfig() Config {
	return Config{
		Nodes: 1000, ShardsPerNode: 1000, Copies: 2, RackSize: 50, Zones: 3, ShardsPerIndex: 10,
		ShardSize: Dist{Kind: "lognormal", A: 2 << 30, B: 1}, MaxShardSize: 50 << 30, FilesPerShard: 40, FileRatio: 0.8, Seed: 1,

		NIC: 1.25e9, Disk: 1e9,
		MaxRecoveries: 2, MaxOutgoing: 2, MaxSnapshotDownloads: 4, ParallelFiles: 8,
		PartSize: 16 << 20, PartConcurrency: 4, PinWait: 600, VerifyDigest: "auto", PeerWireRatio: 1,
		UseSnapshots: true, Overhead: 0.5, RPCLatency: 0.001,

		S3GetRPS: 5500, S3PutRPS: 3500, S3Latency: 0.03,
		Layout: "current", HashPrefixes: 256, PrefixDepth: 2,
		RetryInitial: retry.Repository.Initial.Seconds(), RetryMax: retry.Repository.Max.Seconds(), RetryBudget: retry.Repository.MaxElapsed.Seconds(),

		SnapshotFraction: 1, IdleFraction: 0.5, Churn: 0.1, OpsSinceSnapshot: 20000, OpBytes: 1024,
		SnapshotKeep: 3, CleanupInterval: 600, CleanupSweep: "held",

		Fail: "rack:0", Return: "spread", Reissue: 10,
		DT: 1, MaxTime: 7 * 86400, TimelineEvery: 10,
	}
}

// Dist is a distribution of shard sizes: fixed:A, uniform:A:B or
// lognormal:A:B (median A, sigma B).
type Dist struct {
	Kind string
	A, B float64
}

func (d Dist) String() string {
	switch d.Kind {
	case "fixed":
		return "fixed:" + ibytes(d.A)
	case "uniform":
		return "uniform:" + ibytes(d.A) + ":" + ibytes(d.B)
	}
	return "lognormal:" + ibytes(d.A) + ":" + strconv.FormatFloat(d.B, 'g', -1, 64)
}

// Mean is the distribution's expected value.
func (d Dist) Mean() float64 {
	switch d.Kind {
	case "fixed":
		return d.A
	case "uniform":
		return (d.A + d.B) / 2
	}
	return d.A * math.Exp(d.B*d.B/2)
}

func parseDist(s string) (Dist, error) {
	parts := strings.Split(s, ":")
	num := func(i int, size bool) (float64, error) {
		if i >= len(parts) {
			return 0, fmt.Errorf("distribution %q: missing a parameter", s)
		}
		if size {
			n, err := humanize.ParseBytes(parts[i])
			return float64(n), err
		}
		return strconv.ParseFloat(parts[i], 64)
	}
	d := Dist{Kind: parts[0]}
	var err error
	switch d.Kind {
	case "fixed":
		d.A, err = num(1, true)
	case "uniform", "lognormal":
		if d.A, err = num(1, true); err == nil {
			d.B, err = num(2, d.Kind == "uniform")
		}
	default:
		return d, fmt.Errorf("distribution %q: want fixed:SIZE, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA", s)
	}
	if err != nil {
		return d, fmt.Errorf("distribution %q: %w", s, err)
	}
	if d.A <= 0 || (d.Kind == "uniform" && d.B < d.A) || (d.Kind == "lognormal" && d.B < 0) {
		return d, fmt.Errorf("distribution %q: parameters out of range", s)
	}
	return d, nil
}

// ibytes prints a size in binary units when it is a round number of them
// (16MiB, 50GiB), else in decimal ones (1.0GB, 250MB).
func ibytes(b float64) string {
	if u := uint64(b); u >= 1024 && u%1024 == 0 {
		return strings.ReplaceAll(humanize.IBytes(u), " ", "")
	}
	for _, u := range []struct {
		name string
		size float64
	}{{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}} {
		if b >= u.size {
			return strconv.FormatFloat(b/u.size, 'g', 4, 64) + u.name
		}
	}
	return strconv.FormatFloat(b, 'g', -1, 64) + "B"
}

// option is one setting: its flag name is also its key in a scenario file
// and in -vary.
type option struct {
	name, help string
	get        func(*Config) string
	set        func(*Config, string) error
}

func intO(name, help string, p func(*Config) *int) option {
	return option{name, help, func(c *Config) string { return strconv.Itoa(*p(c)) },
		func(c *Config, v string) (err error) { *p(c), err = strconv.Atoi(v); return }}
}

func i64O(name, help string, p func(*Config) *int64) option {
	return option{name, help, func(c *Config) string { return strconv.FormatInt(*p(c), 10) },
		func(c *Config, v string) (err error) { *p(c), err = strconv.ParseInt(v, 10, 64); return }}
}

func fltO(name, help string, p func(*Config) *float64) option {
	return option{name, help, func(c *Config) string { return strconv.FormatFloat(*p(c), 'g', -1, 64) },
		func(c *Config, v string) (err error) { *p(c), err = strconv.ParseFloat(v, 64); return }}
}

func strO(name, help string, p func(*Config) *string) option {
	return option{name, help, func(c *Config) string { return *p(c) },
		func(c *Config, v string) error { *p(c) = v; return nil }}
}

func boolO(name, help string, p func(*Config) *bool) option {
	return option{name, help, func(c *Config) string { return strconv.FormatBool(*p(c)) },
		func(c *Config, v string) (err error) { *p(c), err = strconv.ParseBool(v); return }}
}

// sizeO takes 16MiB, 250MB or a number of bytes (a rate when it is one).
func sizeO(name, help string, p func(*Config) *float64) option {
	return option{name, help, func(c *Config) string { return ibytes(*p(c)) },
		func(c *Config, v string) error {
			n, err := humanize.ParseBytes(v)
			*p(c) = float64(n)
			return err
		}}
}

func durO(name, help string, p func(*Config) *float64) option {
	return option{name, help, func(c *Config) string { return time.Duration(*p(c) * float64(time.Second)).String() },
		func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			*p(c) = d.Seconds()
			return err
		}}
}

var options = []option{
	intO("nodes", "nodes in the fleet", func(c *Config) *int { return &c.Nodes }),
	intO("shards-per-node", "shard copies each node holds", func(c *Config) *int { return &c.ShardsPerNode }),
	intO("copies", "copies of each shard, the primary included (Elasticsearch: replicas+1)", func(c *Config) *int { return &c.Copies }),
	intO("rack-size", "nodes per rack", func(c *Config) *int { return &c.RackSize }),
	intO("zones", "zones; racks are dealt to zones in turn", func(c *Config) *int { return &c.Zones }),
	intO("shards-per-index", "shards of one index (the first component of a snapshot key)", func(c *Config) *int { return &c.ShardsPerIndex }),
	{"shard-size", "shard size distribution: fixed:SIZE, uniform:MIN:MAX, lognormal:MEDIAN:SIGMA",
		func(c *Config) string { return c.ShardSize.String() },
		func(c *Config, v string) (err error) { c.ShardSize, err = parseDist(v); return }},
	sizeO("max-shard-size", "no shard is larger (rollover, as Elasticsearch ILM's max_primary_shard_size 50gb); 0 = no bound", func(c *Config) *float64 { return &c.MaxShardSize }),
	intO("files-per-shard", "segment files per shard", func(c *Config) *int { return &c.FilesPerShard }),
	fltO("file-ratio", "each segment file is this fraction of the previous one (largest first)", func(c *Config) *float64 { return &c.FileRatio }),
	{"seed", "random seed (placement, sizes, jitter)", func(c *Config) string { return strconv.FormatUint(c.Seed, 10) },
		func(c *Config, v string) (err error) { c.Seed, err = strconv.ParseUint(v, 10, 64); return }},

	sizeO("throttle", "recoverd --throttle: node-wide bytes/s shared by peer and snapshot bytes, sent and received (0 = unlimited)", func(c *Config) *float64 { return &c.Throttle }),
	sizeO("nic", "NIC bytes/s each way (0 = unlimited)", func(c *Config) *float64 { return &c.NIC }),
	sizeO("disk", "disk bytes/s, reads and writes together (0 = unlimited)", func(c *Config) *float64 { return &c.Disk }),
	intO("max-recoveries", "recoverd --max-recoveries: recoveries running at once as target", func(c *Config) *int { return &c.MaxRecoveries }),
	intO("max-outgoing", "recoverd --max-outgoing: commit pins a source grants at once", func(c *Config) *int { return &c.MaxOutgoing }),
	intO("max-snapshot-downloads", "recoverd --max-snapshot-downloads: snapshot files downloading at once on a node", func(c *Config) *int { return &c.MaxSnapshotDownloads }),
	intO("parallel-files", "recoverd --parallel-files: files in flight per peer transfer", func(c *Config) *int { return &c.ParallelFiles }),
	i64O("part-size", "snapshot.Downloader.PartSize: bytes per ranged GET", func(c *Config) *int64 { return &c.PartSize }),
	intO("part-concurrency", "snapshot.Downloader.PartConcurrency: ranged GETs of one file at once", func(c *Config) *int { return &c.PartConcurrency }),
	durO("pin-wait", "recoverd --pin-wait", func(c *Config) *float64 { return &c.PinWait }),
	fltO("pin-jitter", "each sleep of a recovery refused a pin is its backoff times a uniform factor in [1-J, 1+J]: 0 is the code's fixed backoff, in lockstep; a real cluster's timing noise acts as some (0.5 matches the 6-node cluster)", func(c *Config) *float64 { return &c.PinJitter }),
	strO("verify-digest", "recoverd --verify-digest: auto, always or never", func(c *Config) *string { return &c.VerifyDigest }),
	fltO("peer-wire-ratio", "wire bytes per peer byte (zstd: 0.25 on text, 1 on incompressible segments)", func(c *Config) *float64 { return &c.PeerWireRatio }),
	boolO("use-snapshots", "recoverd --use-snapshots", func(c *Config) *bool { return &c.UseSnapshots }),
	durO("overhead", "fixed time per recovery for open, flush, publish and fsyncs", func(c *Config) *float64 { return &c.Overhead }),
	durO("rpc-latency", "one peer RPC round trip", func(c *Config) *float64 { return &c.RPCLatency }),

	fltO("s3-get-rps", "GET/HEAD (and LIST) requests/s per partitioned prefix (0 = unlimited)", func(c *Config) *float64 { return &c.S3GetRPS }),
	fltO("s3-put-rps", "PUT/COPY/POST/DELETE requests/s per partitioned prefix (0 = unlimited)", func(c *Config) *float64 { return &c.S3PutRPS }),
	fltO("s3-total-get-rps", "GET-class requests/s the whole store serves (0 = unlimited)", func(c *Config) *float64 { return &c.S3TotalGetRPS }),
	fltO("s3-total-put-rps", "PUT-class requests/s the whole store serves (0 = unlimited)", func(c *Config) *float64 { return &c.S3TotalPutRPS }),
	sizeO("s3-bandwidth", "bytes/s the store serves in total (0 = unlimited)", func(c *Config) *float64 { return &c.S3Bandwidth }),
	sizeO("s3-prefix-bandwidth", "bytes/s the store serves per partitioned prefix (0 = unlimited)", func(c *Config) *float64 { return &c.S3PrefixBandwidth }),
	sizeO("s3-stream-rate", "bytes/s of one GET connection (0 = unlimited)", func(c *Config) *float64 { return &c.S3StreamRate }),
	durO("s3-latency", "time to first byte of an S3 request", func(c *Config) *float64 { return &c.S3Latency }),
	strO("layout", "snapshot key layout: current (<index>/<shard>/...) or hashed (<hash>/<index>/<shard>/...)", func(c *Config) *string { return &c.Layout }),
	intO("hash-prefixes", "distinct hash prefixes of the hashed layout", func(c *Config) *int { return &c.HashPrefixes }),
	intO("prefix-depth", "key components S3 has partitioned on: 0 one partition, 1 first component, 2, 3", func(c *Config) *int { return &c.PrefixDepth }),
	intO("prefix-chars", "leading key characters S3 has partitioned on, instead of -prefix-depth (0 = use -prefix-depth)", func(c *Config) *int { return &c.PrefixChars }),
	durO("s3-retry-initial", "retry.Repository.Initial", func(c *Config) *float64 { return &c.RetryInitial }),
	durO("s3-retry-max", "retry.Repository.Max", func(c *Config) *float64 { return &c.RetryMax }),
	durO("s3-retry-budget", "retry.Repository.MaxElapsed (recoverd: min(--retry-budget, 30s))", func(c *Config) *float64 { return &c.RetryBudget }),

	fltO("snapshot-fraction", "share of shards with a snapshot in the repository", func(c *Config) *float64 { return &c.SnapshotFraction }),
	fltO("idle-fraction", "share of shards not written since their latest snapshot", func(c *Config) *float64 { return &c.IdleFraction }),
	fltO("churn", "share of a written shard's bytes (its newest files) not in its latest snapshot", func(c *Config) *float64 { return &c.Churn }),
	i64O("ops-since-snapshot", "ops a written shard indexed since its latest snapshot", func(c *Config) *int64 { return &c.OpsSinceSnapshot }),
	i64O("op-bytes", "bytes of one op", func(c *Config) *int64 { return &c.OpBytes }),
	durO("snapshot-interval", "every shard is snapshotted this often, as background load (0 = no snapshots during the run)", func(c *Config) *float64 { return &c.SnapshotInterval }),
	intO("snapshot-keep", "snapshots kept per shard (recoverctl snapshot gc --keep)", func(c *Config) *int { return &c.SnapshotKeep }),
	durO("cleanup-interval", "recoverd --cleanup-interval (0 = no sweep during the run)", func(c *Config) *float64 { return &c.CleanupInterval }),
	strO("cleanup-sweep", "which shards a node's repository sweep visits: held (the code: the shards it holds a copy of), all (the code before issue 16: every shard of the repository), own (its primaries), off", func(c *Config) *string { return &c.CleanupSweep }),

	strO("fail", "failures, ';'-separated, each after the previous is fully recovered: rack:I, zone:I, nodes:I,J,..., random:K, each with an optional @RETURN (nodes:1@same-with-data) overriding -return; none: only the background load", func(c *Config) *string { return &c.Fail }),
	strO("return", "where lost copies are rebuilt: spread (least loaded node, other zone/rack), same (the node comes back empty), same-with-data (it comes back with its copies)", func(c *Config) *string { return &c.Return }),
	durO("detect", "time from a failure to the recoveries being started", func(c *Config) *float64 { return &c.Detect }),
	durO("reissue", "time before the orchestrator starts a failed recovery again", func(c *Config) *float64 { return &c.Reissue }),
	i64O("ops-while-down", "ops a shard indexed while its copy was away (return=same-with-data)", func(c *Config) *int64 { return &c.OpsWhileDown }),
	durO("dt", "time step of the rate allocation (divides 1s)", func(c *Config) *float64 { return &c.DT }),
	durO("max-time", "give up simulating after this much simulated time", func(c *Config) *float64 { return &c.MaxTime }),
	strO("timeline", "write a per-interval CSV timeline to this file", func(c *Config) *string { return &c.Timeline }),
	durO("timeline-every", "timeline row interval", func(c *Config) *float64 { return &c.TimelineEvery }),
	durO("measured", "calibration: the real cluster's time to full redundancy; the report compares", func(c *Config) *float64 { return &c.MeasuredRedundant }),
}

func optionByName(name string) (option, bool) {
	for _, o := range options {
		if o.name == name {
			return o, true
		}
	}
	return option{}, false
}

// validate checks what the engine relies on.
func (c *Config) validate() error {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if c.Nodes < 2 || c.ShardsPerNode < 1 || c.Copies < 1 || c.Copies > c.Nodes {
		bad("need nodes >= 2, shards-per-node >= 1 and 1 <= copies <= nodes")
	}
	if (c.Nodes*c.ShardsPerNode)%c.Copies != 0 {
		bad("nodes x shards-per-node (%d) must be a multiple of copies (%d)", c.Nodes*c.ShardsPerNode, c.Copies)
	}
	if c.RackSize < 1 || c.Zones < 1 || c.ShardsPerIndex < 1 || c.FilesPerShard < 1 || c.FileRatio <= 0 || c.FileRatio > 1 {
		bad("rack-size, zones, shards-per-index, files-per-shard must be >= 1 and 0 < file-ratio <= 1")
	}
	if c.MaxRecoveries < 1 || c.MaxOutgoing < 1 || c.MaxSnapshotDownloads < 1 || c.ParallelFiles < 1 || c.PartConcurrency < 1 || c.PartSize < 1 {
		bad("the recoverd limits and part settings must be >= 1")
	}
	if c.PinJitter < 0 || c.PinJitter >= 1 {
		bad("pin-jitter must be in [0, 1)")
	}
	if c.Throttle < 0 || c.NIC < 0 || c.Disk < 0 || c.S3Bandwidth < 0 || c.S3PrefixBandwidth < 0 || c.S3StreamRate < 0 || c.PeerWireRatio <= 0 {
		bad("bandwidths must not be negative, peer-wire-ratio must be positive")
	}
	if c.NIC == 0 && c.Disk == 0 && c.Throttle == 0 {
		bad("at least one of throttle, nic, disk must bound a node's bandwidth")
	}
	switch c.VerifyDigest {
	case "auto", "always", "never":
	default:
		bad("verify-digest %q: want auto, always or never", c.VerifyDigest)
	}
	switch c.Layout {
	case "current", "hashed":
	default:
		bad("layout %q: want current or hashed", c.Layout)
	}
	if c.PrefixDepth < 0 || c.PrefixDepth > 3 || c.PrefixChars < 0 || c.HashPrefixes < 1 {
		bad("prefix-depth must be 0..3, prefix-chars not negative and hash-prefixes >= 1")
	}
	switch c.CleanupSweep {
	case "held", "all", "own", "off":
	default:
		bad("cleanup-sweep %q: want held, all, own or off", c.CleanupSweep)
	}
	switch c.Return {
	case "spread", "same", "same-with-data":
	default:
		bad("return %q: want spread, same or same-with-data", c.Return)
	}
	steps := 1 / c.DT
	if c.DT <= 0 || c.DT > 1 || math.Abs(steps-math.Round(steps)) > 1e-9 {
		bad("dt must divide one second (1s, 500ms, 100ms, ...)")
	}
	for _, f := range []float64{c.SnapshotFraction, c.IdleFraction, c.Churn} {
		if f < 0 || f > 1 {
			bad("snapshot-fraction, idle-fraction and churn are shares between 0 and 1")
			break
		}
	}
	if c.OpBytes < 1 || c.OpsSinceSnapshot < 0 || c.OpsWhileDown < 0 || c.SnapshotKeep < 1 {
		bad("op-bytes and snapshot-keep must be >= 1, op counts not negative")
	}
	if len(errs) > 0 {
		return fmt.Errorf("sim: %s", strings.Join(errs, "; "))
	}
	return nil
}
