package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/snapshot"
)

type snapDeleteOutput struct {
	Repo         string `json:"repo"`
	Shard        string `json:"shard"`
	SnapshotID   string `json:"snapshot_id"`
	MarkedBlobs  int    `json:"marked_blobs"`
	DeletedBlobs int    `json:"deleted_blobs"`
	FreedBytes   int64  `json:"freed_bytes"`
	KeptBlobs    string `json:"kept_blobs,omitempty"`
}

func newSnapshotDeleteCmd(g *globalFlags) *cobra.Command {
	var (
		idf   snapIDFlags
		rf    snapRepoFlags
		delay time.Duration
	)
	cmd := &cobra.Command{
		Use:   "delete SNAPSHOT-ID",
		Short: "Delete one snapshot: its manifest, then its blobs no other snapshot references",
		Long: `delete removes the manifest first, then marks for deletion the snapshot's
blobs that no other manifest references, and deletes the blobs of the shard
marked longer ago than --deletion-delay. A corrupt manifest can be deleted;
when any manifest of the shard cannot be read, the blobs are kept (snapshot
unfinished --remove marks them once every manifest reads).`,
		Example: `  recoverctl snapshot delete --repo file:///tmp/repo --index logs --shard 0 s-20250101T120000.000Z-a1b2c3`,
		Args:    snapUsageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := snapshot.ValidateSnapshotID(args[0]); err != nil {
				return usageError{err}
			}
			if err := checkDeletionDelay(delay); err != nil {
				return err
			}
			ctx, done, id, repo, err := snapSetup(cmd, &idf, &rf)
			if err != nil {
				return err
			}
			defer done()
			res, err := snapshot.Delete(ctx, repo, id, args[0], snapshot.DeleteOptions{Delay: delay})
			if err != nil {
				return err
			}
			out := snapDeleteOutput{Repo: repo.String(), Shard: id.String(), SnapshotID: res.SnapshotID, MarkedBlobs: res.MarkedBlobs,
				DeletedBlobs: res.DeletedBlobs, FreedBytes: res.FreedBytes, KeptBlobs: res.KeptBlobs}
			return emit(cmd, g, out, func(w io.Writer) {
				fmt.Fprintf(w, "deleted snapshot %s of %s: %d blobs marked for deletion; %d marked blobs past the deletion delay deleted, %s freed\n",
					out.SnapshotID, out.Shard, out.MarkedBlobs, out.DeletedBlobs, humanBytes(out.FreedBytes))
				if out.KeptBlobs != "" {
					fmt.Fprintf(w, "note: blobs kept: %s\n", out.KeptBlobs)
				}
			})
		},
	}
	idf.register(cmd)
	rf.register(cmd)
	deletionDelayFlag(cmd, &delay)
	return cmd
}
