package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/planner"
	"github.com/recoverd/recoverd/recovery"
	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
)

// planOutput is what plan prints with -o json: the plan's own fields at the
// top level, the notes about how the input was gathered, and the input
// itself (so a decision can be replayed through planner.Compute).
type planOutput struct {
	planner.Plan
	Notes []string      `json:"notes,omitempty"`
	Input planner.Input `json:"input"`
}

type planFlags struct {
	sourceData, targetData, index string
	shard                         int
	repo                          snapRepoFlags
	noSnapshots, explain          bool
	allowDataLoss                 bool
}

func newPlanCmd(g *globalFlags) *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "plan --explain --source-data DIR --target-data DIR --index I [--shard N] [--repo URL]",
		Short: "Plan the recovery of a shard copy offline and explain every choice",
		Long: `plan gathers what a recovery would plan from, offline, from the data
directories of the source and target nodes and from the snapshot repository,
and prints the plan with the reasons for every choice and every rejected
option (DESIGN.md section 5). Nothing is copied.

  source    its newest commit (read without the shard lock); the ops it
            retains and its live retention leases come from opening the
            shard, which needs the lock: when the daemon holds it, the
            commit's min retained seqno..max seqno is assumed instead, and a
            note says so.
  target    its newest commit; no shard there is an empty target, a shard
            whose commit cannot be read is treated as empty, with the error.
  snapshot  the latest snapshot of the shard in --repo; without --repo (or
            with --repo none) snapshots are disabled; a repository that
            cannot be read is "unavailable", with its error.
  versions  this build's writer and format versions, for both nodes.

Exit codes: 0 a plan, 1 the recovery is refused (or the source cannot be
read), 2 bad usage.`,
		Example: `  recoverctl plan --explain --source-data /tmp/n1 --target-data /tmp/n2 --index logs --shard 0
  recoverctl plan --explain --source-data /tmp/n1 --target-data /tmp/n2 --index logs --repo file:///tmp/repo
  recoverctl plan --source-data /tmp/n1 --target-data /tmp/n2 --index logs \
      --repo 's3://snaps/prod?endpoint=127.0.0.1:9000&tls=false' -o json | jq .kind`,
		Args: snapUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := shardstore.ShardID{Index: f.index, Shard: f.shard}
			if err := id.Validate(); err != nil {
				return usageError{err}
			}
			ctx, cancel := snapSignalCtx(cmd)
			defer cancel()
			in, notes, err := planGather(ctx, f, id)
			if err != nil {
				return err
			}
			p := planner.Compute(in)
			out := planOutput{Plan: p, Notes: notes, Input: in}
			if err := emit(cmd, g, out, func(w io.Writer) {
				if !f.explain {
					fmt.Fprintln(w, p.String())
					return
				}
				planPrint(w, f, id, in, notes, p)
			}); err != nil {
				return err
			}
			if p.Refused() {
				return fmt.Errorf("recovery of %s refused: %s", id, p.String())
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.sourceData, "source-data", "", "data directory of the source node (required)")
	fl.StringVar(&f.targetData, "target-data", "", "data directory of the target node (required)")
	fl.StringVar(&f.index, "index", "", "index name (required)")
	fl.IntVar(&f.shard, "shard", 0, "shard number")
	fl.StringVar(&f.repo.url, "repo", "", "snapshot repository: file:///abs/path or s3://bucket/prefix[?endpoint=host:port&region=r&tls=false] (none or empty: snapshots disabled)")
	f.repo.registerS3(cmd)
	fl.DurationVar(&f.repo.retryFor, "retry-for", 10*time.Second, "how long to retry transient S3 errors before calling the repository unavailable (0: one attempt)")
	fl.BoolVar(&f.noSnapshots, "no-snapshots", false, "plan as with snapshots turned off in the settings")
	fl.BoolVar(&f.allowDataLoss, "allow-data-loss", false, "plan as a recovery that may overwrite a target ahead of its source")
	fl.BoolVar(&f.explain, "explain", true, "print the plan with its reasons (the default; --explain=false prints a one-line summary)")
	markRequired(cmd, "source-data", "target-data", "index")
	return cmd
}

// planGather builds the planner's input from disk and the repository.
func planGather(ctx context.Context, f planFlags, id shardstore.ShardID) (planner.Input, []string, error) {
	var notes []string
	in := planner.Input{Settings: planner.DefaultSettings()}
	in.Settings.UseSnapshots = !f.noSnapshots
	in.Settings.AllowDataLoss = f.allowDataLoss

	// The snapshot first: a --repo that names no repository is bad usage,
	// reported before anything is read.
	snap, err := planGatherSnapshot(ctx, f, id)
	if err != nil {
		return in, nil, err
	}
	in.Snapshot = snap

	// Source: the commit without the lock, the live state with it.
	meta, err := shardstore.ReadMetadata(f.sourceData, id)
	if err != nil {
		return in, nil, fmt.Errorf("source shard: %w", err)
	}
	in.Source = planner.Source{
		Meta:      meta,
		MaxSeqNo:  meta.Commit.MaxSeqNo,
		Retained:  seqno.Range{From: meta.Commit.MinRetainedSeqNo, To: meta.Commit.MaxSeqNo},
		Version:   shardstore.WriterVersion,
		MaxFormat: shardstore.FormatVersion,
	}
	s, err := shardstore.Open(f.sourceData, id, shardstore.Options{})
	switch {
	case err == nil:
		if live := s.Metadata(); live.Generation == meta.Generation {
			st := s.Stats()
			in.Source.MaxSeqNo = st.Seq.MaxSeqNo
			in.Source.Retained = s.RetainedOps()
			in.Source.Leases = s.Leases().List()
		} else {
			// Opening found another commit than the one read: trust neither
			// mix, keep the commit's own numbers.
			notes = append(notes, fmt.Sprintf("source commit changed while it was read (generation %d, then %d): retained ops taken from the commit", meta.Generation, live.Generation))
		}
		s.Close()
	case errors.Is(err, syscall.EWOULDBLOCK):
		notes = append(notes, fmt.Sprintf("source shard is locked by another process (the daemon?): retained ops assumed to be the commit's %s, its live leases and any ops above the commit are unknown", planRange(in.Source.Retained)))
	default:
		notes = append(notes, fmt.Sprintf("source shard could not be opened (%v): retained ops assumed to be the commit's %s, its live leases and any ops above the commit are unknown", err, planRange(in.Source.Retained)))
	}

	// Target.
	in.Target = planner.Target{Version: shardstore.WriterVersion, MaxFormat: shardstore.FormatVersion}
	tmeta, err := shardstore.ReadMetadata(f.targetData, id)
	switch {
	case err == nil:
		in.Target.Meta = tmeta
	case errors.Is(err, shardstore.ErrNotFound):
		in.Target.Empty = true
	default:
		in.Target.Unreadable = err.Error()
	}
	return in, notes, nil
}

// planGatherSnapshot asks the repository for the shard's latest snapshot,
// classified as a recovery does (recovery.SnapshotInput). Only a --repo
// that cannot name a repository is an error (bad usage); a repository that
// cannot be opened is "unavailable" with its error, and the planner goes to
// the peer.
func planGatherSnapshot(ctx context.Context, f planFlags, id shardstore.ShardID) (planner.Snapshot, error) {
	if f.noSnapshots || f.repo.url == "" || f.repo.url == "none" {
		return planner.Snapshot{State: planner.SnapshotDisabled}, nil
	}
	repo, err := f.repo.open("", true)
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return planner.Snapshot{}, err
		}
		return planner.Snapshot{State: planner.SnapshotUnavailable, Err: err.Error()}, nil
	}
	defer repo.Close()
	snap, _ := recovery.SnapshotInput(ctx, repo, id)
	return snap, nil
}

func planPrint(w io.Writer, f planFlags, id shardstore.ShardID, in planner.Input, notes []string, p planner.Plan) {
	src := in.Source
	c := src.Meta.Commit
	fmt.Fprintf(w, "shard     %s\n", id)
	fmt.Fprintf(w, "source    %s: history %s, term %d, commit max seqno %v, local checkpoint %v, %d files (%s); ops up to %v, retains %s, %d live lease(s)\n",
		f.sourceData, c.HistoryUUID, c.PrimaryTerm, c.MaxSeqNo, c.LocalCheckpoint, len(src.Meta.Files), humanBytes(src.Meta.TotalBytes()),
		src.MaxSeqNo, planRange(src.Retained), len(src.Leases))
	t := in.Target
	switch {
	case t.Empty:
		fmt.Fprintf(w, "target    %s: no copy of the shard (empty)\n", f.targetData)
	case t.Unreadable != "":
		fmt.Fprintf(w, "target    %s: unreadable: %s\n", f.targetData, t.Unreadable)
	default:
		tc := t.Meta.Commit
		fmt.Fprintf(w, "target    %s: history %s, term %d, commit max seqno %v, local checkpoint %v, %d files (%s)\n",
			f.targetData, tc.HistoryUUID, tc.PrimaryTerm, tc.MaxSeqNo, tc.LocalCheckpoint, len(t.Meta.Files), humanBytes(t.Meta.TotalBytes()))
	}
	sn := in.Snapshot
	switch sn.State {
	case planner.SnapshotAvailable:
		fmt.Fprintf(w, "snapshot  %s: history %s, max seqno %v, local checkpoint %v, %d files\n",
			sn.ID, sn.Commit.HistoryUUID, sn.Commit.MaxSeqNo, sn.Commit.LocalCheckpoint, len(sn.Files))
	case planner.SnapshotUnavailable:
		fmt.Fprintf(w, "snapshot  repository unavailable: %s\n", sn.Err)
	case planner.SnapshotDisabled:
		fmt.Fprintf(w, "snapshot  disabled\n")
	default:
		fmt.Fprintf(w, "snapshot  none of this shard in the repository\n")
	}
	fmt.Fprintf(w, "versions  %s (format %d) on both nodes (this build)\n", shardstore.WriterVersion, shardstore.FormatVersion)
	for _, n := range notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, p.Explain())
}

// planRange renders an op range, "no ops" when empty.
func planRange(r seqno.Range) string {
	if r.Empty() {
		return "no ops"
	}
	return r.String()
}
