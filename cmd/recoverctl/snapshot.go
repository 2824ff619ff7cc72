package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// snapshot: offline commands on a snapshot repository (DESIGN.md section 4).
// They talk to the repository directly, not to a daemon; create opens the
// shard on disk, so the daemon must not hold it.

// snapRepoFlags select the repository and tune its retries. The URL and
// the --s3-* flags are recoverd's: snapshot.ParseLocation merges them.
type snapRepoFlags struct {
	url      string
	s3       snapshot.LocationFlags
	retryFor time.Duration
}

func (f *snapRepoFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.url, "repo", os.Getenv("RECOVERD_REPO"),
		"snapshot repository: file:///abs/path or s3://bucket/prefix[?endpoint=host:port&region=r&tls=false]; S3 credentials from RECOVERD_S3_ACCESS_KEY/RECOVERD_S3_SECRET_KEY or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (default: $RECOVERD_REPO, else <data>/snapshots when --data is given, as recoverd does)")
	f.registerS3(cmd)
	fl.DurationVar(&f.retryFor, "retry-for", retry.Repository.MaxElapsed,
		"how long to retry transient S3 errors before giving up (0: one attempt)")
}

// registerS3 registers the flags that name an S3 repository's settings
// beside the URL, as recoverd's do; the URL's query may say the same, and
// the two must agree.
func (f *snapRepoFlags) registerS3(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.s3.Endpoint, "s3-endpoint", "", "S3 endpoint host:port, or http(s)://host:port (else RECOVERD_S3_ENDPOINT, else s3.amazonaws.com); same as endpoint= in --repo")
	fl.StringVar(&f.s3.Region, "s3-region", "", "S3 region (else RECOVERD_S3_REGION or AWS_REGION, else us-east-1); same as region= in --repo")
	fl.BoolVar(&f.s3.Insecure, "s3-insecure", false, "talk plain HTTP to S3 (loopback or a private network only); same as tls=false in --repo")
}

// snapRepoURL resolves the repository URL: --repo, else the daemon's
// default next to the data directory.
func (f *snapRepoFlags) resolve(dataDir string) (string, error) {
	if f.url != "" {
		return f.url, nil
	}
	if dataDir == "" {
		return "", usagef("--repo is required (or RECOVERD_REPO, or --data for the node's default repository <data>/snapshots)")
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return "", usagef("--data: %v", err)
	}
	return (&url.URL{Scheme: "file", Path: filepath.Join(abs, "snapshots")}).String(), nil
}

func (f *snapRepoFlags) retryPolicy() retry.Options {
	p := retry.Options{MaxElapsed: f.retryFor}
	if f.retryFor <= 0 {
		p.MaxElapsed = -1 // one attempt
	}
	return p
}

// open opens the repository. A URL (with the --s3-* flags) that cannot
// name a repository is a usage error; a repository that cannot be reached
// is an ordinary one.
// With mustExist, a local repository directory that does not exist is an
// error (ErrUnavailable) instead of being created: a typo must not read as
// "no snapshots".
func (f *snapRepoFlags) open(dataDir string, mustExist bool) (snapshot.Repository, error) {
	raw, err := f.resolve(dataDir)
	if err != nil {
		return nil, err
	}
	loc, err := snapshot.ParseLocation(raw, f.s3)
	if err != nil {
		return nil, usageError{fmt.Errorf("--repo: %w", err)}
	}
	if loc.Scheme == "file" && mustExist {
		if _, err := os.Stat(loc.Path); err != nil {
			return nil, fmt.Errorf("%w: repository directory %s: %w", snapshot.ErrUnavailable, loc.Path, err)
		}
	}
	repo, err := loc.Open(snapshot.S3Options{Retry: f.retryPolicy()})
	if err != nil {
		if errors.Is(err, snapshot.ErrUnavailable) {
			return nil, err
		}
		return nil, usageError{fmt.Errorf("--repo: %w", err)}
	}
	return repo, nil
}

// snapIDFlags name a shard by index and number, without a data directory.
type snapIDFlags struct {
	data, index string
	shard       int
}

func (f *snapIDFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.index, "index", "", "index name (required)")
	fl.IntVar(&f.shard, "shard", 0, "shard number")
	fl.StringVar(&f.data, "data", "", "data directory of the node: with no --repo, use its default repository <data>/snapshots")
	markRequired(cmd, "index")
}

func (f *snapIDFlags) id() (shardstore.ShardID, error) {
	id := shardstore.ShardID{Index: f.index, Shard: f.shard}
	if err := id.Validate(); err != nil {
		return id, usageError{err}
	}
	return id, nil
}

// snapUsageArgs makes a wrong number of arguments a usage error (exit
// code 2), as a bad flag is.
func snapUsageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// snapSignalCtx is the command's context, cancelled by SIGINT or SIGTERM
// so an interrupted upload or deletion stops its requests.
func snapSignalCtx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// snapSetup is what every repository-only subcommand starts with.
func snapSetup(cmd *cobra.Command, idf *snapIDFlags, rf *snapRepoFlags) (context.Context, func(), shardstore.ShardID, snapshot.Repository, error) {
	id, err := idf.id()
	if err != nil {
		return nil, nil, id, nil, err
	}
	ctx, cancel := snapSignalCtx(cmd)
	repo, err := rf.open(idf.data, true)
	if err != nil {
		cancel()
		return nil, nil, id, nil, err
	}
	return ctx, func() { repo.Close(); cancel() }, id, repo, nil
}

func newSnapshotCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Create, list, inspect, verify, delete and garbage-collect shard snapshots in a repository (offline); a node's snapshot policy",
		Long: `snapshot works on a snapshot repository directly, without a daemon (but for
policy, which asks a daemon for its snapshot policy's view of its shards): a local
directory (file:///abs/path) or S3 / MinIO (s3://bucket/prefix?endpoint=host:port&tls=false,
or s3://bucket/prefix with --s3-endpoint host:port --s3-insecure, as recoverd
takes it: the query and the flags name the same settings and must agree).
S3 credentials come from RECOVERD_S3_ACCESS_KEY / RECOVERD_S3_SECRET_KEY (or
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), never from the URL, and are never
printed.

A repository that cannot be read is an error (exit code 1), never an empty
listing. Nothing is deleted because something could not be read.

delete, gc and unfinished --remove never delete a blob at once: they mark
it for deletion, and a blob marked longer than --deletion-delay ago that no
snapshot references is deleted by the next of them (or by a node's cleanup
sweep). A snapshot being created meanwhile, by recoverd or recoverctl in
any process, never reuses a marked blob and checks its blobs before and
after writing its manifest, so none of these removes a blob it names. Use
the same --deletion-delay everywhere (recoverd's default is 1h).`,
		Example: `  export RECOVERD_S3_ACCESS_KEY=minioadmin RECOVERD_S3_SECRET_KEY=minioadmin
  R='s3://snapshots/prod?endpoint=127.0.0.1:9000&tls=false'
  recoverctl snapshot create --repo "$R" --data /tmp/n1 --index logs --shard 0
  recoverctl snapshot list   --repo "$R" --index logs --shard 0
  recoverctl snapshot gc     --repo "$R" --index logs --shard 0 --keep 3
  recoverctl snapshot policy --addr 127.0.0.1:7400 --insecure`,
	}
	cmd.AddCommand(newSnapshotCreateCmd(g), newSnapshotListCmd(g), newSnapshotPolicyCmd(g), newSnapshotShowCmd(g),
		newSnapshotDeleteCmd(g), newSnapshotGCCmd(g), newSnapshotUnfinishedCmd(g), newSnapshotVerifyCmd(g))
	return cmd
}

// deletionDelayFlag registers --deletion-delay on cmd.
func deletionDelayFlag(cmd *cobra.Command, d *time.Duration) {
	cmd.Flags().DurationVar(d, "deletion-delay", snapshot.DefaultDeletionDelay,
		"a blob marked for deletion longer ago than this, and referenced by no snapshot, is deleted (protects snapshots being created)")
}

func checkDeletionDelay(d time.Duration) error {
	if d <= 0 {
		return usagef("--deletion-delay must be positive, got %v", d)
	}
	return nil
}
