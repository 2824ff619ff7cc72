package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/recoverd/recoverd/transfer"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// Config is the daemon's configuration. Each field comes, from lowest to
// highest precedence, from its default, the YAML file given with --config,
// the environment (RECOVERD_<NAME>, e.g. RECOVERD_DATA) and the flags.
type Config struct {
	Data     string
	Engine   string
	NodeID   string
	GRPCAddr string
	PeerAddr string
	HTTPAddr string

	Repo         string
	S3Endpoint   string
	S3Region     string
	S3AccessKey  string
	S3SecretKey  string
	S3Insecure   bool
	S3Timeout    time.Duration
	UseSnapshots bool

	MaxRecoveries        int
	MaxOutgoing          int
	MaxPinsPerHolder     int
	MaxLeasesPerHolder   int
	MaxSnapshotDownloads int
	Throttle             int64
	ChunkSize            int64
	ParallelFiles        int
	Compression          bool
	DataConns            bool
	RetryBudget          time.Duration
	IdleTimeout          time.Duration
	LeaseTTL             time.Duration
	CopyRetention        time.Duration
	PinTTL               time.Duration
	PinWait              time.Duration
	DiskMargin           string
	RetainOps            int64
	KeepFinished         time.Duration
	VerifyDigest         string
	CleanupInterval      time.Duration
	UploadGrace          time.Duration
	DeletionDelay        time.Duration

	SnapshotInterval      time.Duration
	SnapshotJitter        float64
	SnapshotKeep          int
	SnapshotMaxAge        time.Duration
	SnapshotScope         string
	MaxSnapshotUploads    int
	SnapshotLeaseMaxOps   int64
	SnapshotLeaseMaxBytes int64

	Insecure  bool
	TLSCert   string
	TLSKey    string
	TLSCA     string
	TokenFile string

	LogLevel  string
	LogFormat string
	Pprof     bool
}

func defaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		NodeID: host, GRPCAddr: "127.0.0.1:7400", PeerAddr: "127.0.0.1:7401", HTTPAddr: "127.0.0.1:7402",
		S3Timeout: 30 * time.Second, UseSnapshots: true,
		MaxRecoveries: 2, MaxOutgoing: 2, MaxLeasesPerHolder: 16, MaxSnapshotDownloads: 4, ChunkSize: transfer.DefaultChunkSize, ParallelFiles: 8, Compression: true, DataConns: true,
		RetryBudget: 2 * time.Minute, IdleTimeout: 30 * time.Second, LeaseTTL: 5 * time.Minute, CopyRetention: 12 * time.Hour, PinTTL: 2 * time.Minute, PinWait: 10 * time.Minute, DiskMargin: "5%",
		RetainOps: 10000, KeepFinished: time.Hour, VerifyDigest: "auto", CleanupInterval: 10 * time.Minute, UploadGrace: 24 * time.Hour, DeletionDelay: time.Hour,
		SnapshotJitter: 0.1, SnapshotScope: "primaries", MaxSnapshotUploads: 2, SnapshotLeaseMaxOps: 1_000_000, SnapshotLeaseMaxBytes: 1 << 30,
		LogLevel: "info", LogFormat: "text",
	}
}

// option is one configuration key: its flag name (the YAML key is the
// same, the environment variable RECOVERD_ + upper snake case), the group
// --help lists it under, and the type --help shows.
type option struct {
	name, help string
	group      string
	typ        string
	secret     bool
	get        func(*Config) string
	set        func(*Config, string) error
}

// typedOpt is an option holding a T, printed by format and read by parse.
func typedOpt[T any](name, help, typ string, p func(*Config) *T, format func(T) string, parse func(string) (T, error)) option {
	return option{name: name, help: help, typ: typ,
		get: func(c *Config) string { return format(*p(c)) },
		set: func(c *Config, v string) error {
			x, err := parse(v)
			*p(c) = x
			return err
		}}
}

func strOpt(name, help string, p func(*Config) *string) option {
	return typedOpt(name, help, "string", p, func(s string) string { return s }, func(s string) (string, error) { return s, nil })
}

// secretOpt is a string never printed by --print-config.
func secretOpt(name, help string, p func(*Config) *string) option {
	o := strOpt(name, help, p)
	o.secret = true
	return o
}

func boolOpt(name, help string, p func(*Config) *bool) option {
	return typedOpt(name, help, "bool", p, strconv.FormatBool, strconv.ParseBool)
}

func intOpt(name, help string, p func(*Config) *int) option {
	return typedOpt(name, help, "int", p, strconv.Itoa, strconv.Atoi)
}

// bytesOpt takes sizes like 1048576, 1MiB or 50MB.
func bytesOpt(name, help string, p func(*Config) *int64) option {
	return typedOpt(name, help, "bytes", p, formatInt64, func(v string) (int64, error) {
		n, err := humanize.ParseBytes(v)
		return int64(n), err
	})
}

func countOpt(name, help string, p func(*Config) *int64) option {
	return typedOpt(name, help, "int", p, formatInt64, func(v string) (int64, error) { return strconv.ParseInt(v, 10, 64) })
}

func floatOpt(name, help string, p func(*Config) *float64) option {
	return typedOpt(name, help, "float", p, func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) },
		func(v string) (float64, error) { return strconv.ParseFloat(v, 64) })
}

func durOpt(name, help string, p func(*Config) *time.Duration) option {
	return typedOpt(name, help, "duration", p, time.Duration.String, time.ParseDuration)
}

func formatInt64(n int64) string { return strconv.FormatInt(n, 10) }

// The groups --help lists the flags in, in this order.
const (
	groupNode      = "Node and listeners"
	groupSecurity  = "Security"
	groupRepo      = "Snapshot repository"
	groupLimits    = "Limits"
	groupTransfers = "Transfers"
	groupRecovery  = "Recoveries onto this node"
	groupSource    = "Op history kept for recoveries from this node"
	groupPolicy    = "Snapshot policy"
	groupCleanup   = "Cleanup"
	groupLogging   = "Logging and debugging"
	groupConfig    = "Configuration"
)

func group(title string, opts ...option) []option {
	for i := range opts {
		opts[i].group = title
	}
	return opts
}

var options = slices.Concat(
	group(groupNode,
		strOpt("data", "data directory of this node (shards live under <data>/shards)", func(c *Config) *string { return &c.Data }),
		strOpt("engine", "unix:///path/engine.sock: recover the shards of the engine serving EngineService there (shardd), on the same data volume; empty: open the shards in this process and serve ShardService", func(c *Config) *string { return &c.Engine }),
		strOpt("node-id", "name of this node in leases, pins and logs (default: the host name)", func(c *Config) *string { return &c.NodeID }),
		strOpt("grpc-addr", "control API listener (RecoveryService, SnapshotService, ShardService)", func(c *Config) *string { return &c.GRPCAddr }),
		strOpt("peer-addr", "peer listener (PeerService, node to node)", func(c *Config) *string { return &c.PeerAddr }),
		strOpt("http-addr", "HTTP listener for /metrics, /healthz and /readyz", func(c *Config) *string { return &c.HTTPAddr }),
	),
	group(groupSecurity,
		boolOpt("insecure", "serve and dial plaintext without TLS or token (refused unless every listener is on loopback)", func(c *Config) *bool { return &c.Insecure }),
		strOpt("tls-cert", "this node's certificate (PEM), for both listeners and for dialing peers", func(c *Config) *string { return &c.TLSCert }),
		strOpt("tls-key", "this node's private key (PEM)", func(c *Config) *string { return &c.TLSKey }),
		strOpt("tls-ca", "the cluster CA (PEM): peers must present a certificate it signed", func(c *Config) *string { return &c.TLSCA }),
		strOpt("token-file", "file holding the bearer token the control API requires", func(c *Config) *string { return &c.TokenFile }),
	),
	group(groupRepo,
		strOpt("repo", "snapshot repository URL: file:///path (default <data>/snapshots) or s3://bucket/prefix[?endpoint=host:port&region=r&tls=false] (the query and the --s3-* flags name the same settings: either, or both if they agree); 'none' disables snapshots", func(c *Config) *string { return &c.Repo }),
		strOpt("s3-endpoint", "S3 endpoint host:port, or http(s)://host:port (default s3.amazonaws.com); same as endpoint= in --repo", func(c *Config) *string { return &c.S3Endpoint }),
		strOpt("s3-region", "S3 region (default us-east-1, or AWS_REGION); same as region= in --repo", func(c *Config) *string { return &c.S3Region }),
		strOpt("s3-access-key", "S3 access key (else RECOVERD_S3_ACCESS_KEY or AWS_ACCESS_KEY_ID)", func(c *Config) *string { return &c.S3AccessKey }),
		secretOpt("s3-secret-key", "S3 secret key (better: RECOVERD_S3_SECRET_KEY or AWS_SECRET_ACCESS_KEY); never printed", func(c *Config) *string { return &c.S3SecretKey }),
		boolOpt("s3-insecure", "talk plain HTTP to S3 (loopback or a private network only); same as tls=false in --repo", func(c *Config) *bool { return &c.S3Insecure }),
		durOpt("s3-timeout", "deadline of one S3 request's answer, and of a download that receives nothing (a hung store)", func(c *Config) *time.Duration { return &c.S3Timeout }),
	),
	group(groupLimits,
		intOpt("max-recoveries", "recoveries running at once on this node as target; more queue", func(c *Config) *int { return &c.MaxRecoveries }),
		intOpt("max-outgoing", "recoveries served at once by this node as source (commit pins); more wait", func(c *Config) *int { return &c.MaxOutgoing }),
		intOpt("max-pins-per-holder", "commit pins one peer node may hold on this node at once (0 = --max-outgoing)", func(c *Config) *int { return &c.MaxPinsPerHolder }),
		intOpt("max-leases-per-holder", "retention leases one peer node may hold on one shard of this node", func(c *Config) *int { return &c.MaxLeasesPerHolder }),
		intOpt("max-snapshot-downloads", "snapshot files downloading at once on this node", func(c *Config) *int { return &c.MaxSnapshotDownloads }),
		bytesOpt("throttle", "node-wide bandwidth budget in bytes/s shared by peer and snapshot transfers, e.g. 50MB (0 = unlimited)", func(c *Config) *int64 { return &c.Throttle }),
		strOpt("disk-margin", "free space a recovery must leave on this node's disk once it has staged what its plan moves, as a share of the disk (5%) or a size (2GiB); a plan that would not leave it is refused before any byte moves", func(c *Config) *string { return &c.DiskMargin }),
	),
	group(groupTransfers,
		bytesOpt("chunk-size", "peer file chunk size", func(c *Config) *int64 { return &c.ChunkSize }),
		intOpt("parallel-files", "files in flight per peer transfer", func(c *Config) *int { return &c.ParallelFiles }),
		boolOpt("compression", "zstd on peer chunks where it pays: the source compresses when its measured link is slower than compression (adaptive; never for data that does not compress)", func(c *Config) *bool { return &c.Compression }),
		boolOpt("data-conns", "fetch peer files on data connections to the peer listener (gRPC framing spared, every check kept); off: over gRPC. A source always serves both", func(c *Config) *bool { return &c.DataConns }),
		durOpt("retry-budget", "how long a transfer keeps retrying transient errors without progress", func(c *Config) *time.Duration { return &c.RetryBudget }),
		durOpt("idle-timeout", "a stream silent this long is resumed on a new one", func(c *Config) *time.Duration { return &c.IdleTimeout }),
	),
	group(groupRecovery,
		boolOpt("use-snapshots", "let plans use snapshots (per recovery it can be overridden)", func(c *Config) *bool { return &c.UseSnapshots }),
		durOpt("pin-ttl", "commit pin lifetime asked of sources (a recovery renews its pin for as long as it runs)", func(c *Config) *time.Duration { return &c.PinTTL }),
		durOpt("pin-wait", "how long a recovery waits, queued and without holding a --max-recoveries slot, for a source at its --max-outgoing limit (its refused asks and the backoff between them; time queued for a slot does not count); then it fails", func(c *Config) *time.Duration { return &c.PinWait }),
		strOpt("verify-digest", "what a recovery's final check compares with the source: auto (the BLAKE3 sum of every file moved and the digest of the ops moved, computed on both nodes as they streamed: nothing is read again), always (content digests: a read of the whole shard on both nodes), never (history and seqnos only)", func(c *Config) *string { return &c.VerifyDigest }),
		durOpt("keep-finished", "how long finished recoveries stay readable, restarts included (they are journaled)", func(c *Config) *time.Duration { return &c.KeepFinished }),
	),
	group(groupSource,
		durOpt("lease-ttl", "retention lease lifetime without renewal (leases this node grants)", func(c *Config) *time.Duration { return &c.LeaseTTL }),
		durOpt("copy-retention", "how long a recovered copy's retention lease (a recovery's lease handed over to replication) keeps the ops the copy lacks once it acknowledges nothing (ShardService.AckReplica); within it a copy that restarts recovers by ops alone", func(c *Config) *time.Duration { return &c.CopyRetention }),
		countOpt("retain-ops", "ops kept below the local checkpoint for ops-based recoveries, beyond what leases ask", func(c *Config) *int64 { return &c.RetainOps }),
	),
	group(groupPolicy,
		durOpt("snapshot-interval", "snapshot each shard of this node this often (0 = no scheduled snapshots, and no snapshot retention lease); the repository is --repo", func(c *Config) *time.Duration { return &c.SnapshotInterval }),
		floatOpt("snapshot-jitter", "move each scheduled snapshot by up to ±jitter/2 of the interval, at random, so a fleet does not snapshot at the same second (0 to 1)", func(c *Config) *float64 { return &c.SnapshotJitter }),
		intOpt("snapshot-keep", "after a successful scheduled snapshot, keep the shard's newest N snapshots and delete the others (0 = no bound); nothing is deleted when a manifest cannot be read", func(c *Config) *int { return &c.SnapshotKeep }),
		durOpt("snapshot-max-age", "after a successful scheduled snapshot, delete the shard's snapshots older than this, never the newest (0 = none)", func(c *Config) *time.Duration { return &c.SnapshotMaxAge }),
		strOpt("snapshot-scope", "which copies the policy snapshots: primaries (copies acting as primary) or all", func(c *Config) *string { return &c.SnapshotScope }),
		intOpt("max-snapshot-uploads", "snapshots created at once on this node, scheduled or asked for (their bytes share --throttle); 0 = no bound", func(c *Config) *int { return &c.MaxSnapshotUploads }),
		countOpt("snapshot-lease-max-ops", "the snapshot retention lease keeps every op above the latest snapshot on each copy, but never more than this many ops (0 = no bound by count; 0 with --snapshot-lease-max-bytes 0 = no lease)", func(c *Config) *int64 { return &c.SnapshotLeaseMaxOps }),
		bytesOpt("snapshot-lease-max-bytes", "nor more than this many bytes of ops, by the copy's mean op size (0 = no bound by size)", func(c *Config) *int64 { return &c.SnapshotLeaseMaxBytes }),
	),
	group(groupCleanup,
		durOpt("cleanup-interval", "period of the cleanup sweep (0 = only at start)", func(c *Config) *time.Duration { return &c.CleanupInterval }),
		durOpt("upload-grace", "age after which a snapshot upload without manifest counts as abandoned (and is marked for deletion)", func(c *Config) *time.Duration { return &c.UploadGrace }),
		durOpt("deletion-delay", "how long a snapshot blob stays marked for deletion before it is deleted; protects snapshots other processes are creating (use the same on every node and recoverctl)", func(c *Config) *time.Duration { return &c.DeletionDelay }),
	),
	group(groupLogging,
		strOpt("log-level", "debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }),
		strOpt("log-format", "text or json", func(c *Config) *string { return &c.LogFormat }),
		boolOpt("pprof", "serve Go profiles under /debug/pprof/ on --http-addr (benchmarks, debugging)", func(c *Config) *bool { return &c.Pprof }),
	),
)

func envName(flagName string) string {
	return "RECOVERD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// loadConfig builds the configuration from defaults, file, environment and
// flags. It returns printConfig when --print-config was given, and
// pflag.ErrHelp once --help has been written to out.
func loadConfig(args []string, getenv func(string) string, out io.Writer) (cfg Config, printConfig bool, err error) {
	cfg = defaultConfig()
	cmd := newCommand(cfg, getenv, args)
	cmd.SetOut(out)
	cmd.SetErr(out)
	loaded := false
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		loaded = true
		printConfig, _ = c.Flags().GetBool("print-config")
		configFile, _ := c.Flags().GetString("config")
		return applyLayers(&cfg, configFile, getenv, c.Flags())
	}
	if err := cmd.Execute(); err != nil {
		return cfg, false, err
	}
	if !loaded {
		return cfg, false, pflag.ErrHelp
	}
	return cfg, printConfig, nil
}

// applyLayers sets cfg from the file, then the environment, then the flags
// given on the command line (their text was kept as given, so a flag wins
// over what is below it and a flag left out does not override anything).
func applyLayers(cfg *Config, configFile string, getenv func(string) string, flags *pflag.FlagSet) error {
	byName := map[string]option{}
	for _, o := range options {
		byName[o.name] = o
	}
	if configFile != "" {
		data, err := os.ReadFile(configFile)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		var raw map[string]any
		if err := yaml.Unmarshal(data, &raw); err != nil {
			return fmt.Errorf("config file %s: %w", configFile, err)
		}
		for k, v := range raw {
			o, ok := byName[k]
			if !ok {
				return fmt.Errorf("config file %s: unknown key %q", configFile, k)
			}
			if err := o.set(cfg, fmt.Sprint(v)); err != nil {
				return fmt.Errorf("config file %s: %s: %w", configFile, k, err)
			}
		}
	}
	for _, o := range options {
		if v := getenv(envName(o.name)); v != "" {
			if err := o.set(cfg, v); err != nil {
				return fmt.Errorf("%s: %w", envName(o.name), err)
			}
		}
	}
	var errs []error
	flags.Visit(func(f *pflag.Flag) {
		if o, ok := byName[f.Name]; ok {
			if err := o.set(cfg, f.Value.String()); err != nil {
				errs = append(errs, fmt.Errorf("--%s: %w", f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// printConfig writes the effective configuration as YAML, secrets masked.
func writeConfig(w io.Writer, cfg Config) {
	names := make([]string, 0, len(options))
	byName := map[string]option{}
	for _, o := range options {
		names = append(names, o.name)
		byName[o.name] = o
	}
	sort.Strings(names)
	for _, n := range names {
		o := byName[n]
		v := o.get(&cfg)
		if o.secret && v != "" {
			v = "<redacted>"
		}
		fmt.Fprintf(w, "%s: %q\n", n, v)
	}
}
