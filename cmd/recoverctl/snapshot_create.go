package main

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// snapCreateOutput is what create prints.
type snapCreateOutput struct {
	Repo          string       `json:"repo"`
	Shard         string       `json:"shard"`
	SnapshotID    string       `json:"snapshot_id"`
	Generation    uint64       `json:"generation"`
	Commit        seqnoSummary `json:"commit"`
	UploadedFiles int          `json:"uploaded_files"`
	UploadedBytes int64        `json:"uploaded_bytes"`
	ReusedFiles   int          `json:"reused_files"`
	ReusedBytes   int64        `json:"reused_bytes"`
	Seconds       float64      `json:"seconds"`
	MBPerSec      float64      `json:"mb_per_sec"`
	Skipped       int          `json:"skipped_corrupt_manifests,omitempty"`
	Notes         []string     `json:"notes,omitempty"`
}

type seqnoSummary struct {
	MaxSeqNo        seqno.SeqNo `json:"max_seqno"`
	LocalCheckpoint seqno.SeqNo `json:"local_checkpoint"`
}

// snapOpenShard opens a shard offline; a shard locked by another process
// (the daemon) is an error that says what to do.
func snapOpenShard(dataDir string, id shardstore.ShardID, what string) (*shardstore.Shard, error) {
	s, err := shardstore.Open(dataDir, id, shardstore.Options{})
	if err == nil {
		return s, nil
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("%s works offline and the shard is locked: the daemon (or another recoverctl) must not hold %s; stop recoverd on this node or ask it through its SnapshotService: %w", what, id, err)
	}
	return nil, err
}

func newSnapshotCreateCmd(g *globalFlags) *cobra.Command {
	var (
		sf          shardFlags
		rf          snapRepoFlags
		concurrency int
		flush       bool
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Snapshot a shard's current commit into the repository (offline: the daemon must not hold the shard)",
		Long: `create pins the shard's current commit, uploads the files the repository does
not already hold (a file the same by name, length, CRC32C and writer UUID as
one of an existing snapshot is reused), then writes the manifest, last.

Ops above the commit (in the op log, not yet flushed) are not in the
snapshot; --flush writes them into a new commit first.`,
		Example: `  recoverctl snapshot create --repo file:///tmp/repo --data /tmp/n1 --index logs --shard 0
  recoverctl snapshot create --data /var/lib/recoverd --index logs --flush     # repo: /var/lib/recoverd/snapshots
  recoverctl snapshot create --repo 's3://snaps/prod?endpoint=127.0.0.1:9000&tls=false' --data /tmp/n1 --index logs -o json`,
		Args: snapUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if concurrency <= 0 {
				return usagef("--concurrency must be > 0")
			}
			id, err := sf.id()
			if err != nil {
				return err
			}
			ctx, cancel := snapSignalCtx(cmd)
			defer cancel()
			repo, err := rf.open(sf.data, false)
			if err != nil {
				return err
			}
			defer repo.Close()
			s, err := snapOpenShard(sf.data, id, "snapshot create")
			if err != nil {
				return err
			}
			defer s.Close()
			if flush {
				if err := s.Flush(); err != nil {
					return fmt.Errorf("flush %s: %w", id, err)
				}
			}
			start := time.Now()
			res, err := snapshot.Create(ctx, repo, snapshot.StoreSource(s), snapshot.CreateOptions{Concurrency: concurrency, Retry: rf.retryPolicy()})
			if err != nil {
				return err
			}
			d := time.Since(start)
			m := res.Manifest
			out := snapCreateOutput{
				Repo: repo.String(), Shard: id.String(), SnapshotID: m.ID, Generation: m.Generation,
				Commit:        seqnoSummary{m.Commit.MaxSeqNo, m.Commit.LocalCheckpoint},
				UploadedFiles: res.UploadedFiles, UploadedBytes: res.UploadedBytes,
				ReusedFiles: res.ReusedFiles, ReusedBytes: res.ReusedBytes,
				Seconds: d.Seconds(), MBPerSec: float64(res.UploadedBytes) / 1e6 / max(d.Seconds(), 1e-9),
				Skipped: res.SkippedManifests,
			}
			if live := s.Stats().Seq.MaxSeqNo; live > m.Commit.MaxSeqNo {
				out.Notes = append(out.Notes, fmt.Sprintf("ops %v..%v are in the op log but not in a commit, so not in this snapshot (use --flush)", m.Commit.MaxSeqNo+1, live))
			}
			if res.SkippedManifests > 0 {
				out.Notes = append(out.Notes, fmt.Sprintf("%d manifest(s) of the shard cannot be read; their blobs were not reused (see snapshot list)", res.SkippedManifests))
			}
			return emit(cmd, g, out, func(w io.Writer) {
				fmt.Fprintf(w, "created snapshot %s of %s in %s\n", out.SnapshotID, out.Shard, out.Repo)
				fmt.Fprintf(w, "  commit    generation %d, max seqno %v, local checkpoint %v\n", out.Generation, out.Commit.MaxSeqNo, out.Commit.LocalCheckpoint)
				fmt.Fprintf(w, "  uploaded  %d files, %s\n", out.UploadedFiles, humanBytes(out.UploadedBytes))
				fmt.Fprintf(w, "  reused    %d files, %s\n", out.ReusedFiles, humanBytes(out.ReusedBytes))
				fmt.Fprintf(w, "  took      %s (%.1f MB/s uploaded)\n", d.Round(time.Millisecond), out.MBPerSec)
				for _, n := range out.Notes {
					fmt.Fprintf(w, "note: %s\n", n)
				}
			})
		},
	}
	sf.register(cmd)
	rf.register(cmd)
	cmd.Flags().IntVar(&concurrency, "concurrency", 4, "files uploaded at once")
	cmd.Flags().BoolVar(&flush, "flush", false, "flush ops not yet in a commit first, so the snapshot holds every op")
	return cmd
}
