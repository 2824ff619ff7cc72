package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

// snapVerifyOutput is what verify prints.
type snapVerifyOutput struct {
	Repo     string   `json:"repo"`
	Scope    []string `json:"scope"` // the shards asked for; empty: the whole repository
	OK       bool     `json:"ok"`
	ReadOnly bool     `json:"read_only,omitempty"`
	Seconds  float64  `json:"seconds"`
	*snapshot.VerifyResult
	// Error is why the verification stopped before the end (the
	// repository could not be read); what was found so far is above.
	Error string `json:"error,omitempty"`
}

func newSnapshotVerifyCmd(g *globalFlags) *cobra.Command {
	var (
		rf          snapRepoFlags
		shards      []string
		index, data string
		throttle    string
		concurrency int
		readOnly    bool
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Read every blob a snapshot references and check its length and CRC32C; list missing and corrupt blobs",
		Long: `verify scrubs a repository: every blob that a readable manifest references
is read whole, once however many snapshots share it, and checked against the
manifest's length and CRC32C. The whole repository by default, or the shards
given with --shard (repeatable) or --index.

Corrupt and missing blobs are listed with the snapshots and files that
reference them, and marked bad in the repository (<index>/<shard>/bad/<blob>),
as a recovery that finds one does: plans leave out the snapshots that
reference a marked blob, and the next snapshot of the shard uploads the file
again. The mark of a blob that reads back whole, or that no snapshot
references any more, is removed. --read-only reports without touching a
mark. Nothing else is ever written or deleted: the bad blobs stay for
inspection.

A repository that cannot be read stops the verification (unreadable is not
corrupt: nothing is marked for it). --throttle bounds the bytes read per
second.

Exit codes: 0 every blob checked out; 1 missing or corrupt blobs or corrupt
manifests were found, or the repository could not be read (the report says
which); 2 bad usage.`,
		Example: `  recoverctl snapshot verify --repo file:///tmp/repo
  recoverctl snapshot verify --repo 's3://snaps/prod?endpoint=127.0.0.1:9000&tls=false' --shard logs/0 --throttle 50MB
  recoverctl snapshot verify --repo s3://snaps/prod --s3-endpoint 127.0.0.1:9000 --s3-insecure --index logs --read-only -o json`,
		Args: snapUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if concurrency <= 0 {
				return usagef("--concurrency must be > 0")
			}
			var rate uint64
			if throttle != "" {
				var err error
				if rate, err = humanize.ParseBytes(throttle); err != nil {
					return usagef("--throttle %q: %v (bytes per second, e.g. 50MB)", throttle, err)
				}
			}
			var ids []shardstore.ShardID
			for _, s := range shards {
				id, err := shardstore.ParseShardID(s)
				if err != nil {
					return usagef("--shard %q: %v (want index/number, e.g. logs/0)", s, err)
				}
				ids = append(ids, id)
			}
			if index != "" && len(ids) > 0 {
				return usagef("--index and --shard select the shards two ways: give one")
			}
			if index != "" {
				if err := shardstore.ValidateName(index); err != nil {
					return usagef("--index %q: %v", index, err)
				}
			}
			ctx, cancel := snapSignalCtx(cmd)
			defer cancel()
			repo, err := rf.open(data, true)
			if err != nil {
				return err
			}
			defer repo.Close()
			if index != "" {
				all, err := snapshot.Shards(ctx, repo)
				if err != nil {
					return err
				}
				for _, id := range all {
					if id.Index == index {
						ids = append(ids, id)
					}
				}
				if len(ids) == 0 {
					return fmt.Errorf("index %s has no snapshot in %s", index, repo)
				}
			}
			opts := snapshot.VerifyOptions{Shards: ids, Concurrency: concurrency, ReadOnly: readOnly,
				FoundBy: "recoverctl snapshot verify", Retry: rf.retryPolicy()}
			if rate > 0 {
				th := transfer.NewThrottle(int64(rate))
				opts.Throttle = func(ctx context.Context, n int) error { _, err := th.WaitN(ctx, n); return err }
			}
			start := time.Now()
			res, verr := snapshot.Verify(ctx, repo, opts)
			out := snapVerifyOutput{Repo: repo.String(), Scope: []string{}, ReadOnly: readOnly, VerifyResult: res, Seconds: time.Since(start).Seconds()}
			for _, id := range ids {
				out.Scope = append(out.Scope, id.String())
			}
			out.OK = verr == nil && res.OK()
			if verr != nil {
				out.Error = verr.Error()
			}
			if err := emit(cmd, g, out, func(w io.Writer) { printVerify(w, out) }); err != nil {
				return err
			}
			switch {
			case verr != nil:
				return fmt.Errorf("verification stopped: %w", verr)
			case !res.OK():
				return exitError{exitFailed, fmt.Errorf("the repository is damaged: %s", res.Summary())}
			}
			return nil
		},
	}
	rf.register(cmd)
	fl := cmd.Flags()
	fl.StringArrayVar(&shards, "shard", nil, "a shard to verify, index/number (repeatable; default: every shard in the repository)")
	fl.StringVar(&index, "index", "", "verify every shard of this index")
	fl.StringVar(&data, "data", "", "data directory of the node: with no --repo, use its default repository <data>/snapshots")
	fl.StringVar(&throttle, "throttle", "", "bytes read per second at most, e.g. 50MB (default: unlimited)")
	fl.IntVar(&concurrency, "concurrency", 2, "blobs read at once")
	fl.BoolVar(&readOnly, "read-only", false, "report only: neither mark bad blobs nor clear marks")
	return cmd
}

func printVerify(w io.Writer, out snapVerifyOutput) {
	res := out.VerifyResult
	scope := "the whole repository"
	if len(out.Scope) > 0 {
		scope = strings.Join(out.Scope, ", ")
	}
	fmt.Fprintf(w, "verified %s in %s: %s, %s read in %s\n", scope, out.Repo, res.Summary(), humanBytes(res.Bytes),
		time.Duration(out.Seconds*float64(time.Second)).Round(time.Millisecond))
	for _, c := range append(append([]snapshot.BlobCheck{}, res.Corrupt...), res.Missing...) {
		var refs []string
		for _, r := range c.Refs {
			refs = append(refs, r.File+" in "+r.Snapshot)
		}
		mark := "already marked bad"
		switch {
		case c.Marked:
			mark = "marked bad"
		case out.ReadOnly:
			mark = "read-only: not marked"
		}
		fmt.Fprintf(w, "%-8s %s  %s (%s): %s [%s]\n", strings.ToUpper(c.Status), c.Shard, c.Blob, strings.Join(refs, ", "), c.Detail, mark)
	}
	for _, m := range res.CorruptManifests {
		fmt.Fprintf(w, "MANIFEST %s  snapshot %s cannot be read: %s\n", m.Shard, m.Snapshot, m.Detail)
	}
	for _, c := range res.Cleared {
		fmt.Fprintf(w, "cleared  %s  the bad-blob mark of %s: %s\n", c.Shard, c.Blob, c.Reason)
	}
	if out.Error != "" {
		fmt.Fprintf(w, "stopped before the end: %s\n", out.Error)
	}
}
