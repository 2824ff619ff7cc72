package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/snapshot"
)

type snapBlob struct {
	Key     string    `json:"key"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

type snapUnfinishedOutput struct {
	Repo  string `json:"repo"`
	Shard string `json:"shard"`
	Grace string `json:"grace"`
	// Removed is --remove: Blobs were marked for deletion by this run,
	// Deleted deleted (marked longer ago than the deletion delay).
	Removed      bool       `json:"removed"`
	Blobs        []snapBlob `json:"blobs"`
	Bytes        int64      `json:"bytes"`
	Deleted      []snapBlob `json:"deleted"`
	DeletedBytes int64      `json:"deleted_bytes"`
}

func newSnapshotUnfinishedCmd(g *globalFlags) *cobra.Command {
	var (
		idf    snapIDFlags
		rf     snapRepoFlags
		grace  time.Duration
		remove bool
		delay  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "unfinished",
		Short: "List (or --remove) unfinished uploads: blobs no manifest references, older than --grace",
		Long: `unfinished lists the blobs of a shard that no manifest references and that
are older than --grace: what an interrupted create, or a delete that had to
keep blobs, left behind. A younger blob may belong to an upload in progress.
With --remove they are marked for deletion, and the blobs of the shard marked
longer ago than --deletion-delay (by this command, gc, delete or a node's
cleanup) that no manifest references are deleted. Nothing is listed, marked
or deleted if any manifest of the shard cannot be read.`,
		Example: `  recoverctl snapshot unfinished --repo file:///tmp/repo --index logs
  recoverctl snapshot unfinished --repo file:///tmp/repo --index logs --grace 1h --remove`,
		Args: snapUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if grace < 0 {
				return usagef("--grace must be >= 0")
			}
			if err := checkDeletionDelay(delay); err != nil {
				return err
			}
			ctx, done, id, repo, err := snapSetup(cmd, &idf, &rf)
			if err != nil {
				return err
			}
			defer done()
			out := snapUnfinishedOutput{Repo: repo.String(), Shard: id.String(), Grace: grace.String(), Removed: remove,
				Blobs: []snapBlob{}, Deleted: []snapBlob{}}
			var blobs []snapshot.ObjectInfo
			if remove {
				res, err := snapshot.RemoveUnfinished(ctx, repo, id, grace, snapshot.DeleteOptions{Delay: delay})
				if err != nil {
					if len(res.Marked)+len(res.Deleted) > 0 {
						return fmt.Errorf("%w (%d blob(s) marked, %d deleted before the failure)", err, len(res.Marked), len(res.Deleted))
					}
					return err
				}
				blobs = res.Marked
				for _, b := range res.Deleted {
					out.Deleted = append(out.Deleted, snapBlob{Key: b.Key, Size: b.Size, ModTime: b.ModTime})
					out.DeletedBytes += b.Size
				}
			} else if blobs, err = snapshot.Unfinished(ctx, repo, id, grace, time.Now()); err != nil {
				return err
			}
			for _, b := range blobs {
				out.Blobs = append(out.Blobs, snapBlob{Key: b.Key, Size: b.Size, ModTime: b.ModTime})
				out.Bytes += b.Size
			}
			return emit(cmd, g, out, func(w io.Writer) {
				if len(out.Blobs) == 0 && len(out.Deleted) == 0 {
					fmt.Fprintf(w, "no unfinished upload of %s older than %s\n", out.Shard, out.Grace)
					return
				}
				tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "BLOB\tSIZE\tMODIFIED\t")
				for _, b := range out.Blobs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Key, humanBytes(b.Size), b.ModTime.UTC().Format(time.RFC3339), map[bool]string{true: "marked for deletion"}[out.Removed])
				}
				for _, b := range out.Deleted {
					fmt.Fprintf(tw, "%s\t%s\t%s\tdeleted\n", b.Key, humanBytes(b.Size), b.ModTime.UTC().Format(time.RFC3339))
				}
				tw.Flush()
				if !out.Removed {
					fmt.Fprintf(w, "%d unfinished blob(s), %s; mark them for deletion with --remove\n", len(out.Blobs), humanBytes(out.Bytes))
					return
				}
				fmt.Fprintf(w, "%d blob(s) marked for deletion (%s); %d marked blob(s) past the deletion delay deleted, %s freed\n",
					len(out.Blobs), humanBytes(out.Bytes), len(out.Deleted), humanBytes(out.DeletedBytes))
			})
		},
	}
	idf.register(cmd)
	rf.register(cmd)
	cmd.Flags().DurationVar(&grace, "grace", 24*time.Hour, "only blobs older than this (protects uploads in progress)")
	cmd.Flags().BoolVar(&remove, "remove", false, "mark the listed blobs for deletion, and delete those marked longer ago than --deletion-delay")
	deletionDelayFlag(cmd, &delay)
	return cmd
}
