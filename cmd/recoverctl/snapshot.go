package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// snapshot: offline commands on a snapshot repository (DESIGN.md section 4).
// They talk to the repository directly, not to a daemon; create opens the
// shard on disk, so the daemon must not hold it.

// snapRepoFlags select the repository and tune its retries.
type snapRepoFlags struct {
	url      string
	retryFor time.Duration
}

func (f *snapRepoFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.url, "repo", os.Getenv("RECOVERD_REPO"),
		"snapshot repository: file:///abs/path or s3://bucket/prefix?endpoint=host:port&tls=false; S3 credentials from RECOVERD_S3_ACCESS_KEY/RECOVERD_S3_SECRET_KEY or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (default: $RECOVERD_REPO, else <data>/snapshots when --data is given, as recoverd does)")
	fl.DurationVar(&f.retryFor, "retry-for", snapshot.DefaultRetry.MaxElapsed,
		"how long to retry transient S3 errors before giving up (0: one attempt)")
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

func (f *snapRepoFlags) retryPolicy() snapshot.RetryPolicy {
	p := snapshot.DefaultRetry
	p.MaxElapsed = f.retryFor
	if f.retryFor <= 0 {
		p.MaxElapsed = -1 // one attempt
	}
	return p
}

// open opens the repository. A URL that cannot name a repository is a
// usage error; a repository that cannot be reached is an ordinary one.
// With mustExist, a local repository directory that does not exist is an
// error (ErrUnavailable) instead of being created: a typo must not read as
// "no snapshots".
func (f *snapRepoFlags) open(ctx context.Context, dataDir string, mustExist bool) (snapshot.Repository, error) {
	raw, err := f.resolve(dataDir)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	if err != nil {
		// The URL is not echoed: it may hold a secret.
		return nil, usagef("--repo does not parse as a URL (file:///abs/path or s3://bucket/prefix)")
	}
	if u.User != nil {
		return nil, usagef("--repo must not hold credentials: set RECOVERD_S3_ACCESS_KEY / RECOVERD_S3_SECRET_KEY (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) instead")
	}
	switch u.Scheme {
	case "file":
		if !filepath.IsAbs(u.Path) || (u.Host != "" && u.Host != "localhost") {
			return nil, usagef("--repo %s: a local repository is file:///absolute/path", u.Redacted())
		}
		if mustExist {
			if _, err := os.Stat(u.Path); err != nil {
				return nil, fmt.Errorf("%w: repository directory %s: %w", snapshot.ErrUnavailable, u.Path, err)
			}
		}
	case "s3":
	default:
		return nil, usagef("--repo: scheme %q not supported; use file:///abs/path or s3://bucket/prefix", u.Scheme)
	}
	repo, err := snapshot.OpenRepository(ctx, raw, snapshot.S3Options{Retry: f.retryPolicy()})
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
	repo, err := rf.open(ctx, idf.data, true)
	if err != nil {
		cancel()
		return nil, nil, id, nil, err
	}
	return ctx, func() { repo.Close(); cancel() }, id, repo, nil
}

func newSnapshotCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Create, list, inspect, delete and garbage-collect shard snapshots in a repository (offline)",
		Long: `snapshot works on a snapshot repository directly, without a daemon: a local
directory (file:///abs/path) or S3 / MinIO (s3://bucket/prefix?endpoint=host:port&tls=false).
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
  recoverctl snapshot gc     --repo "$R" --index logs --shard 0 --keep 3`,
	}
	cmd.AddCommand(newSnapshotCreateCmd(g), newSnapshotListCmd(g), newSnapshotShowCmd(g),
		newSnapshotDeleteCmd(g), newSnapshotGCCmd(g), newSnapshotUnfinishedCmd(g))
	return cmd
}

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
			repo, err := rf.open(ctx, sf.data, false)
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
			res, err := snapshot.Create(ctx, repo, s, snapshot.CreateOptions{Concurrency: concurrency, Retry: rf.retryPolicy()})
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

type snapDeleteOutput struct {
	Repo         string `json:"repo"`
	Shard        string `json:"shard"`
	SnapshotID   string `json:"snapshot_id"`
	MarkedBlobs  int    `json:"marked_blobs"`
	DeletedBlobs int    `json:"deleted_blobs"`
	FreedBytes   int64  `json:"freed_bytes"`
	KeptBlobs    string `json:"kept_blobs,omitempty"`
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
				var bad []error
				for _, e := range entries {
					if e.Err != nil {
						bad = append(bad, e.Err)
					}
				}
				if len(bad) > 0 {
					return fmt.Errorf("gc would stop: %d manifest(s) cannot be read: %w", len(bad), errors.Join(bad...))
				}
				cut := max(len(entries)-keep, 0)
				for i, e := range entries {
					if i < cut {
						out.Deleted = append(out.Deleted, e.ID)
					} else {
						out.Kept = append(out.Kept, e.ID)
					}
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
