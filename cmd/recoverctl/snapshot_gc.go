package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/snapshot"
)

type snapGCOutput struct {
	Repo         string   `json:"repo"`
	Shard        string   `json:"shard"`
	DryRun       bool     `json:"dry_run,omitempty"`
	Kept         []string `json:"kept"`
	Deleted      []string `json:"deleted"`
	MarkedBlobs  int      `json:"marked_blobs"`
	DeletedBlobs int      `json:"deleted_blobs"`
	FreedBytes   int64    `json:"freed_bytes"`
}

func newSnapshotGCCmd(g *globalFlags) *cobra.Command {
	var (
		idf    snapIDFlags
		rf     snapRepoFlags
		keep   int
		dryRun bool
		delay  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Keep the newest N snapshots of a shard and delete the others",
		Long: `gc keeps the newest --keep snapshots (by start time) and deletes the others:
manifests first, then it marks for deletion the blobs no kept snapshot
references and deletes the blobs marked longer ago than --deletion-delay
(so the space of a gc is freed by the next gc, or a node's cleanup sweep,
once the delay has passed). If any manifest
of the shard cannot be read, gc stops whole and deletes nothing (exit code 1):
inspect with snapshot list, then delete the corrupt one by id.`,
		Example: `  recoverctl snapshot gc --repo file:///tmp/repo --index logs --shard 0 --keep 3
  recoverctl snapshot gc --repo file:///tmp/repo --index logs --keep 1 --dry-run`,
		Args: snapUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keep < 0 {
				return usagef("--keep must be >= 0, got %d", keep)
			}
			if err := checkDeletionDelay(delay); err != nil {
				return err
			}
			ctx, done, id, repo, err := snapSetup(cmd, &idf, &rf)
			if err != nil {
				return err
			}
			defer done()
			out := snapGCOutput{Repo: repo.String(), Shard: id.String(), DryRun: dryRun, Kept: []string{}, Deleted: []string{}}
			if dryRun {
				entries, err := snapshot.List(ctx, repo, id)
				if err != nil {
					return err
				}
				plan, err := snapshot.PlanGC(entries, keep)
				if err != nil {
					return fmt.Errorf("gc would stop: %w", err)
				}
				for _, e := range plan.Delete {
					out.Deleted = append(out.Deleted, e.ID)
				}
				for _, e := range plan.Keep {
					out.Kept = append(out.Kept, e.ID)
				}
			} else {
				res, err := snapshot.GC(ctx, repo, id, keep, snapshot.DeleteOptions{Delay: delay})
				if res != nil {
					out.Kept = append(out.Kept, res.Kept...)
					out.Deleted = append(out.Deleted, res.Deleted...)
					out.MarkedBlobs, out.DeletedBlobs, out.FreedBytes = res.MarkedBlobs, res.DeletedBlobs, res.FreedBytes
				}
				if err != nil {
					if res != nil && len(res.Deleted) > 0 {
						return fmt.Errorf("%w (deleted before the failure: %s)", err, strings.Join(res.Deleted, ", "))
					}
					return err
				}
			}
			return emit(cmd, g, out, func(w io.Writer) {
				verb := "deleted"
				if out.DryRun {
					verb = "would delete"
				}
				for _, id := range out.Deleted {
					fmt.Fprintf(w, "%s %s\n", verb, id)
				}
				if out.DryRun {
					fmt.Fprintf(w, "dry run: would keep %d, delete %d snapshot(s) of %s\n", len(out.Kept), len(out.Deleted), out.Shard)
					return
				}
				fmt.Fprintf(w, "kept %d, deleted %d snapshot(s) of %s: %d blobs marked for deletion; %d marked blobs past the deletion delay deleted, %s freed\n",
					len(out.Kept), len(out.Deleted), out.Shard, out.MarkedBlobs, out.DeletedBlobs, humanBytes(out.FreedBytes))
			})
		},
	}
	idf.register(cmd)
	rf.register(cmd)
	cmd.Flags().IntVar(&keep, "keep", 0, "number of newest snapshots to keep (required)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be deleted, delete nothing")
	deletionDelayFlag(cmd, &delay)
	markRequired(cmd, "keep")
	return cmd
}
