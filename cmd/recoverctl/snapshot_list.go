package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/snapshot"
)

// snapListEntry is one row of list.
type snapListEntry struct {
	ID              string       `json:"id"`
	StartTime       *time.Time   `json:"start_time,omitempty"`
	EndTime         *time.Time   `json:"end_time,omitempty"`
	HistoryUUID     string       `json:"history_uuid,omitempty"`
	MaxSeqNo        *seqno.SeqNo `json:"max_seqno,omitempty"`
	LocalCheckpoint *seqno.SeqNo `json:"local_checkpoint,omitempty"`
	PrimaryTerm     uint64       `json:"primary_term,omitempty"`
	Files           int          `json:"files"`
	Bytes           int64        `json:"bytes"`
	WriterVersion   string       `json:"writer_version,omitempty"`
	FormatVersion   int          `json:"format_version,omitempty"`
	Error           string       `json:"error,omitempty"`
}

type snapListOutput struct {
	Repo      string          `json:"repo"`
	Shard     string          `json:"shard"`
	Snapshots []snapListEntry `json:"snapshots"`
	Corrupt   int             `json:"corrupt"`
}

func snapEntry(e snapshot.Entry) snapListEntry {
	if e.Err != nil {
		return snapListEntry{ID: e.ID, Error: e.Err.Error()}
	}
	m := e.Manifest
	st, et := m.StartTime, m.EndTime
	maxSeq, cp := m.Commit.MaxSeqNo, m.Commit.LocalCheckpoint
	return snapListEntry{
		ID: e.ID, StartTime: &st, EndTime: &et, HistoryUUID: m.Commit.HistoryUUID,
		MaxSeqNo: &maxSeq, LocalCheckpoint: &cp, PrimaryTerm: m.Commit.PrimaryTerm,
		Files: len(m.Files), Bytes: m.TotalBytes(), WriterVersion: m.Commit.WriterVersion, FormatVersion: m.Commit.FormatVersion,
	}
}

func newSnapshotListCmd(g *globalFlags) *cobra.Command {
	var (
		idf snapIDFlags
		rf  snapRepoFlags
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List a shard's snapshots, oldest first (corrupt manifests are listed with their error)",
		Example: `  recoverctl snapshot list --repo file:///tmp/repo --index logs --shard 0
  recoverctl snapshot list --repo 's3://snaps/prod?endpoint=127.0.0.1:9000&tls=false' --index logs -o json`,
		Args: snapUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, done, id, repo, err := snapSetup(cmd, &idf, &rf)
			if err != nil {
				return err
			}
			defer done()
			entries, err := snapshot.List(ctx, repo, id)
			if err != nil {
				return err
			}
			out := snapListOutput{Repo: repo.String(), Shard: id.String(), Snapshots: []snapListEntry{}}
			for _, e := range entries {
				out.Snapshots = append(out.Snapshots, snapEntry(e))
				if e.Err != nil {
					out.Corrupt++
				}
			}
			return emit(cmd, g, out, func(w io.Writer) {
				if len(out.Snapshots) == 0 {
					fmt.Fprintf(w, "no snapshot of %s in %s\n", out.Shard, out.Repo)
					return
				}
				tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTART\tMAX SEQNO\tCHECKPOINT\tFILES\tSIZE\tWRITER VERSION")
				for _, e := range out.Snapshots {
					if e.Error != "" {
						fmt.Fprintf(tw, "%s\tCORRUPT: %s\t\t\t\t\t\n", e.ID, e.Error)
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%d\t%s\t%s\n", e.ID, e.StartTime.UTC().Format(time.RFC3339), *e.MaxSeqNo,
						*e.LocalCheckpoint, e.Files, humanBytes(e.Bytes), e.WriterVersion)
				}
				tw.Flush()
				if out.Corrupt > 0 {
					fmt.Fprintf(w, "%d corrupt manifest(s): gc refuses to run until they are deleted (snapshot delete ID)\n", out.Corrupt)
				}
			})
		},
	}
	idf.register(cmd)
	rf.register(cmd)
	return cmd
}
