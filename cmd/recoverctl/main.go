// Command recoverctl is the command line of recoverd: it generates shards,
// inspects them, and (against a running daemon) starts, watches and cancels
// recoveries. Every command takes -o json for scripts.
//
// Exit codes: 0 success, 1 the operation or recovery failed, 2 bad usage,
// 3 the recovery was cancelled, 4 the daemon is unreachable or refused the
// credentials.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// usageError marks an error in how the command was called (exit code 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

type globalFlags struct {
	output string
}

func newRoot(stdout io.Writer) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "recoverctl",
		Short: "Command line of recoverd, the shard recovery sidecar",
		Long: `recoverctl generates and inspects shards on disk and talks to recoverd
daemons to plan and run recoveries.

Exit codes: 0 success, 1 the operation or recovery failed, 2 bad usage,
3 the recovery was cancelled, 4 the daemon is unreachable or refused the
credentials.`,
		Example: `  recoverctl demo                                   # the main job end to end, nothing to install
  recoverctl recover --addr 127.0.0.1:7410 --insecure --shard logs/0 --source 127.0.0.1:7401 --wait
  recoverctl status --addr 127.0.0.1:7410 --insecure   # recoveries of a node, like _cat/recovery
  recoverctl plan --explain --source-data /data/n1 --target-data /data/n2 --index logs --repo file:///backups
  recoverctl gen --data /tmp/n1 --index logs --docs 100000 --doc-size 1024 --flush-every 10000`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{err} })
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if g.output != "text" && g.output != "json" {
			return usagef("--output must be text or json, got %q", g.output)
		}
		return requireFlags(cmd)
	}
	root.AddCommand(newGenCmd(g), newShardCmd(g), newDemoCmd(g), newSnapshotCmd(g), newPlanCmd(g), newCertsCmd(g),
		newRecoverCmd(g), newWatchCmd(g), newStatusCmd(g), newListCmd(g), newCancelCmd(g), newExplainCmd(g), newVersionCmd(g))
	return root
}

// requiredAnnotation marks flags a command cannot run without. cobra's own
// MarkFlagRequired reports a missing flag as an ordinary error; scripts need
// it to be a usage error (exit code 2).
const requiredAnnotation = "recoverctl_required"

func markRequired(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		cmd.Flags().SetAnnotation(n, requiredAnnotation, []string{"true"})
	}
}

func requireFlags(cmd *cobra.Command) error {
	var missing []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if _, ok := f.Annotations[requiredAnnotation]; ok && !f.Changed {
			missing = append(missing, "--"+f.Name)
		}
	})
	if len(missing) > 0 {
		return usagef("missing required flag(s) %s (see %s --help)", strings.Join(missing, ", "), cmd.CommandPath())
	}
	return nil
}

// emit prints v as JSON with -o json, else calls text.
func emit(cmd *cobra.Command, g *globalFlags, v any, text func(w io.Writer)) error {
	if g.output == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(cmd.OutOrStdout())
	return nil
}

func main() {
	root := newRoot(os.Stdout)
	err := root.Execute()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "recoverctl:", err)
	var ue usageError
	var ee exitError
	switch {
	case errors.As(err, &ue):
		os.Exit(exitUsage)
	case errors.As(err, &ee):
		os.Exit(ee.code)
	}
	os.Exit(exitFailed)
}
