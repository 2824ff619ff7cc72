package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/recoverd/recoverd/internal/buildinfo"
	"github.com/recoverd/recoverd/shardstore"
)

// The command line, in recoverctl's style: one cobra command whose flags
// are the configuration keys (config.go), spelled --name, listed by group
// in --help.

const long = `recoverd: the shard recovery sidecar.

It serves the control API (RecoveryService, SnapshotService, ShardService)
on --grpc-addr, the peer API on --peer-addr and /metrics, /healthz, /readyz
on --http-addr.

With --engine unix:///path/engine.sock it is a sidecar: the engine process
serving EngineService there (shardd, or your engine) owns the shards on the
shared data volume, which both mount at the same path; recoverd opens no
shard and serves no ShardService (clients write to the engine), and runs
recoveries into and out of the engine's shards through the socket, reading
pinned files and writing staged files on the volume itself. Without
--engine it opens the shards under --data itself (the embedded mode). Configuration: flags > RECOVERD_* environment > --config
YAML file (keys are the flag names) > defaults.

Recoveries are journaled under <data>/recoveries: one that is running when
the node stops (SIGTERM) or crashes resumes by itself under the same id when
it starts again, keeping the files it had staged and verified; finished ones
stay readable for --keep-finished across restarts.

Exit codes: 0 after a clean shutdown, 1 the node failed, 2 bad configuration.`

const examples = `  recoverd --data /var/lib/recoverd --node-id n1 \
    --tls-cert n1.pem --tls-key n1-key.pem --tls-ca ca.pem --token-file token
  recoverd --data /tmp/n1 --insecure --grpc-addr 127.0.0.1:7400 --peer-addr 127.0.0.1:7401
  recoverd --config recoverd.yaml --print-config`

// helpWidth is where --help wraps the flags' descriptions.
const helpWidth = 100

// flagValue keeps a flag's text as given: it is applied to the Config
// after the file and the environment (applyLayers), so flags win.
type flagValue struct{ s, typ string }

func (v *flagValue) String() string     { return v.s }
func (v *flagValue) Set(s string) error { v.s = s; return nil }
func (v *flagValue) Type() string       { return v.typ }

// newCommand is recoverd's command line, without its RunE; --help shows
// the defaults of cfg. args are the arguments it parses.
func newCommand(cfg Config, getenv func(string) string, args []string) *cobra.Command {
	cmd := &cobra.Command{
		Use:           "recoverd",
		Short:         "The shard recovery sidecar",
		Long:          long,
		Example:       examples,
		Args:          noArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionLine(),
	}
	cmd.SetVersionTemplate("recoverd {{.Version}}\n")
	// Never nil: cobra parses os.Args when given nil.
	cmd.SetArgs(append([]string{}, args...))
	fl := cmd.Flags()
	for _, o := range options {
		f := fl.VarPF(&flagValue{s: o.get(&cfg), typ: o.typ}, o.name, "", o.help+" [env "+envName(o.name)+"]")
		if o.typ == "bool" {
			f.NoOptDefVal = "true"
		}
	}
	fl.String("config", getenv("RECOVERD_CONFIG"), "YAML configuration file (keys are the flag names) [env RECOVERD_CONFIG]")
	fl.Bool("print-config", false, "print the effective configuration (secrets masked) and exit")
	fl.Bool("version", false, "print the version (module version, VCS revision, Go version, shard format) and exit")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return twoDashes(c, args, err) })
	cmd.SetUsageFunc(usage)
	return cmd
}

func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments %q", args)
	}
	return nil
}

// twoDashes adds a hint to a parse error caused by a flag given with one
// dash (-data): recoverd used Go's flag package, which accepted it, before
// it took recoverctl's style.
func twoDashes(c *cobra.Command, args []string, err error) error {
	for _, a := range args {
		name, ok := strings.CutPrefix(a, "-")
		name, _, _ = strings.Cut(name, "=")
		if ok && len(name) > 1 && !strings.HasPrefix(name, "-") && c.Flags().Lookup(name) != nil {
			return fmt.Errorf("%w (flags take two dashes: --%s)", err, name)
		}
	}
	return err
}

// usage writes the usage line, the examples and the flags by group.
func usage(c *cobra.Command) error {
	w := c.OutOrStderr()
	fmt.Fprintf(w, "Usage:\n  %s\n\nExamples:\n%s\n", c.UseLine(), c.Example)
	var groups []string
	members := map[string][]string{}
	for _, o := range options {
		if !slices.Contains(groups, o.group) {
			groups = append(groups, o.group)
		}
		members[o.group] = append(members[o.group], o.name)
	}
	groups = append(groups, groupConfig)
	members[groupConfig] = []string{"config", "print-config", "version", "help"}
	for _, g := range groups {
		fs := pflag.NewFlagSet(g, pflag.ContinueOnError)
		fs.SortFlags = false
		for _, name := range members[g] {
			if f := c.Flags().Lookup(name); f != nil {
				fs.AddFlag(f)
			}
		}
		fmt.Fprintf(w, "\n%s:\n%s", g, fs.FlagUsagesWrapped(helpWidth))
	}
	return nil
}

// versionLine is what --version prints after "recoverd": the build
// (internal/buildinfo) and the shard format it writes, which the planner
// compares across nodes.
func versionLine() string {
	return fmt.Sprintf("%s; shard writer version %s, format %d", buildinfo.Read(), shardstore.WriterVersion, shardstore.FormatVersion)
}
