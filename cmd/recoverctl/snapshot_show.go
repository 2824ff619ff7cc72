package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/snapshot"
)

func newSnapshotShowCmd(g *globalFlags) *cobra.Command {
	var (
		idf    snapIDFlags
		rf     snapRepoFlags
		latest bool
	)
	cmd := &cobra.Command{
		Use:   "show [SNAPSHOT-ID]",
		Short: "Print one snapshot's manifest: commit user data and files",
		Example: `  recoverctl snapshot show --repo file:///tmp/repo --index logs s-20250101T120000.000Z-a1b2c3
  recoverctl snapshot show --repo file:///tmp/repo --index logs --latest -o json`,
		Args: snapUsageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if latest == (len(args) == 1) {
				return usagef("give a snapshot id or --latest (one of the two)")
			}
			if len(args) == 1 {
				if err := snapshot.ValidateSnapshotID(args[0]); err != nil {
					return usageError{err}
				}
			}
			ctx, done, id, repo, err := snapSetup(cmd, &idf, &rf)
			if err != nil {
				return err
			}
			defer done()
			var m *snapshot.Manifest
			if latest {
				m, err = snapshot.Latest(ctx, repo, id)
			} else {
				m, err = snapshot.Read(ctx, repo, id, args[0])
			}
			if err != nil {
				return err
			}
			return emit(cmd, g, m, func(w io.Writer) { snapPrintManifest(w, repo.String(), m) })
		},
	}
	idf.register(cmd)
	rf.register(cmd)
	cmd.Flags().BoolVar(&latest, "latest", false, "show the newest readable snapshot")
	return cmd
}

func snapPrintManifest(w io.Writer, repo string, m *snapshot.Manifest) {
	c := m.Commit
	fmt.Fprintf(w, "snapshot           %s\n", m.ID)
	fmt.Fprintf(w, "repository         %s\n", repo)
	fmt.Fprintf(w, "shard              %s\n", m.Shard)
	fmt.Fprintf(w, "start / end        %s / %s (%s)\n", m.StartTime.UTC().Format(time.RFC3339Nano), m.EndTime.UTC().Format(time.RFC3339Nano), m.EndTime.Sub(m.StartTime).Round(time.Millisecond))
	fmt.Fprintf(w, "commit generation  %d\n", m.Generation)
	fmt.Fprintf(w, "history uuid       %s\n", c.HistoryUUID)
	fmt.Fprintf(w, "primary term       %d\n", c.PrimaryTerm)
	fmt.Fprintf(w, "max seqno          %v\n", c.MaxSeqNo)
	fmt.Fprintf(w, "local checkpoint   %v\n", c.LocalCheckpoint)
	fmt.Fprintf(w, "global checkpoint  %s\n", globalCheckpointLine(c))
	fmt.Fprintf(w, "min retained seqno %v\n", c.MinRetainedSeqNo)
	fmt.Fprintf(w, "writer version     %s (format %d)\n", c.WriterVersion, c.FormatVersion)
	fmt.Fprintf(w, "files              %d (%s)\n", len(m.Files), humanBytes(m.TotalBytes()))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tLENGTH\tCRC32C\tWRITER\tBLOB")
	for _, f := range m.Files {
		fmt.Fprintf(tw, "  %s\t%d\t%08x\t%s\t%s\n", f.Name, f.Length, f.CRC32C, f.WriterUUID, f.Blob)
	}
	tw.Flush()
}
