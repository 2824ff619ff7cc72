package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/internal/buildinfo"
	"github.com/recoverd/recoverd/shardstore"
)

// versionOutput is what version prints.
type versionOutput struct {
	buildinfo.Info
	WriterVersion string `json:"writer_version"`
	FormatVersion int    `json:"format_version"`
}

func newVersionCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print recoverctl's version: module version, VCS revision, Go version, shard format",
		Long: `version prints the build of this recoverctl, from the build information Go
embeds in the binary: the main module's version (a tag, a pseudo-version,
or (devel)), the VCS revision and its time when the build stamped them,
and the Go version; then the shard writer version and format it writes
(what recoverd compares across nodes). recoverd --version prints the same
for the daemon, and its /metrics export recoverd_build_info.`,
		Example: `  recoverctl version
  recoverctl version -o json`,
		Args: snapUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := versionOutput{Info: buildinfo.Read(), WriterVersion: shardstore.WriterVersion, FormatVersion: shardstore.FormatVersion}
			return emit(cmd, g, out, func(w io.Writer) {
				fmt.Fprintf(w, "recoverctl %s; shard writer version %s, format %d\n", out.Info, out.WriterVersion, out.FormatVersion)
			})
		},
	}
}
