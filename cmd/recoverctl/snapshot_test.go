package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recoverd/recoverd/shardstore"
	"github.com/recoverd/recoverd/snapshot"
)

// spRun runs recoverctl with args, as main does, and returns its stdout.
func spRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	root := newRoot(&buf)
	root.SetErr(io.Discard)
	root.SetArgs(args)
	err := root.Execute()
	return buf.String(), err
}

// spMust runs recoverctl and fails the test on an error.
func spMust(t *testing.T, args ...string) string {
	t.Helper()
	out, err := spRun(t, args...)
	if err != nil {
		t.Fatalf("recoverctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// spJSON runs recoverctl with -o json and decodes its output into v.
func spJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := spMust(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("recoverctl %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func spIsUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}

// spCleanEnv keeps the environment from choosing a repository or
// credentials for the commands under test.
func spCleanEnv(t *testing.T) {
	for _, k := range []string{"RECOVERD_REPO", "RECOVERD_S3_ENDPOINT", "RECOVERD_S3_ACCESS_KEY", "RECOVERD_S3_SECRET_KEY",
		"RECOVERD_S3_SESSION_TOKEN", "RECOVERD_S3_INSECURE", "RECOVERD_S3_CA_FILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		t.Setenv(k, "")
	}
}

var spID = shardstore.ShardID{Index: "logs", Shard: 0}

// spWrite indexes n docs (keys from first on) into the shard under dataDir,
// creating it if needed, with a flush every flushEvery docs and at the end.
func spWrite(t *testing.T, dataDir string, first, n, flushEvery int) {
	t.Helper()
	s, err := shardstore.Open(dataDir, spID, shardstore.Options{Create: true, RetainOps: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	spIndex(t, s, first, n, flushEvery)
}

func spIndex(t *testing.T, s *shardstore.Shard, first, n, flushEvery int) {
	t.Helper()
	var docs []shardstore.Doc
	for i := first; i < first+n; i++ {
		docs = append(docs, shardstore.Doc{Key: fmt.Sprintf("doc-%06d", i), Value: bytes.Repeat([]byte{byte(i)}, 200)})
		if len(docs) == flushEvery || i == first+n-1 {
			if _, err := s.IndexBatch(context.Background(), docs); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			docs = docs[:0]
		}
	}
}

// spTree lists every file under dir (relative paths), sorted.
func spTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func spIDs(l snapListOutput) []string {
	var ids []string
	for _, e := range l.Snapshots {
		ids = append(ids, e.ID)
	}
	return ids
}

func TestSnapshotLifecycleFileRepo(t *testing.T) {
	spCleanEnv(t)
	data := t.TempDir()
	repoDir := filepath.Join(t.TempDir(), "repo")
	repo := "file://" + repoDir
	sel := []string{"--repo", repo, "--index", "logs", "--shard", "0"}
	spWrite(t, data, 0, 300, 100)

	// create: the first snapshot uploads everything.
	var c1 snapCreateOutput
	spJSON(t, &c1, append([]string{"snapshot", "create", "--data", data}, sel...)...)
	if c1.UploadedFiles != 3 || c1.ReusedFiles != 0 || c1.UploadedBytes <= 0 || c1.Commit.MaxSeqNo != 299 {
		t.Fatalf("first create: %+v", c1)
	}
	if err := snapshot.ValidateSnapshotID(c1.SnapshotID); err != nil {
		t.Fatal(err)
	}

	// Ops above the commit are not in a snapshot: create says so; --flush
	// takes them in, and the unchanged segments are reused.
	s, err := shardstore.Open(data, spID, shardstore.Options{RetainOps: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Index(context.Background(), "late", []byte("not flushed")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	time.Sleep(2 * time.Millisecond) // snapshot ids sort by start time to the ms
	out := spMust(t, append([]string{"snapshot", "create", "--data", data}, sel...)...)
	if !strings.Contains(out, "not in this snapshot (use --flush)") || !strings.Contains(out, "MB/s") {
		t.Fatalf("create text output:\n%s", out)
	}
	time.Sleep(2 * time.Millisecond)
	var c3 snapCreateOutput
	spJSON(t, &c3, append([]string{"snapshot", "create", "--data", data, "--flush"}, sel...)...)
	if c3.ReusedFiles != 3 || c3.UploadedFiles != 1 || c3.Commit.MaxSeqNo != 300 || len(c3.Notes) != 0 {
		t.Fatalf("incremental create: %+v", c3)
	}

	// list: oldest first, every column.
	var l snapListOutput
	spJSON(t, &l, append([]string{"snapshot", "list"}, sel...)...)
	if len(l.Snapshots) != 3 || l.Snapshots[0].ID != c1.SnapshotID || l.Snapshots[2].ID != c3.SnapshotID || l.Corrupt != 0 {
		t.Fatalf("list: %+v", l)
	}
	if e := l.Snapshots[2]; *e.MaxSeqNo != 300 || e.Files != 4 || e.WriterVersion != shardstore.WriterVersion || e.Bytes <= 0 {
		t.Fatalf("list entry: %+v", e)
	}
	text := spMust(t, append([]string{"snapshot", "list"}, sel...)...)
	for _, want := range []string{"ID", "START", "MAX SEQNO", "CHECKPOINT", "FILES", "SIZE", "WRITER VERSION", c1.SnapshotID, shardstore.WriterVersion} {
		if !strings.Contains(text, want) {
			t.Errorf("list text lacks %q:\n%s", want, text)
		}
	}

	// show by id and --latest.
	var m snapshot.Manifest
	spJSON(t, &m, append([]string{"snapshot", "show", c1.SnapshotID}, sel...)...)
	if m.ID != c1.SnapshotID || len(m.Files) != 3 || m.Commit.MaxSeqNo != 299 || m.Commit.WriterVersion == "" {
		t.Fatalf("show: %+v", m)
	}
	spJSON(t, &m, append([]string{"snapshot", "show", "--latest"}, sel...)...)
	if m.ID != c3.SnapshotID {
		t.Fatalf("show --latest: %s, want %s", m.ID, c3.SnapshotID)
	}
	text = spMust(t, append([]string{"snapshot", "show", "--latest"}, sel...)...)
	for _, want := range []string{"history uuid", "max seqno          300", "writer version", m.Files[0].Name, m.Files[0].Blob} {
		if !strings.Contains(text, want) {
			t.Errorf("show text lacks %q:\n%s", want, text)
		}
	}

	// delete the oldest: its blobs are still referenced by the others.
	var d snapDeleteOutput
	spJSON(t, &d, append([]string{"snapshot", "delete", c1.SnapshotID}, sel...)...)
	if d.SnapshotID != c1.SnapshotID || d.DeletedBlobs != 0 || d.KeptBlobs != "" {
		t.Fatalf("delete: %+v", d)
	}
	if _, err := spRun(t, append([]string{"snapshot", "show", c1.SnapshotID}, sel...)...); !errors.Is(err, snapshot.ErrNotFound) || spIsUsage(err) {
		t.Fatalf("show of a deleted snapshot: %v", err)
	}

	// gc --dry-run deletes nothing; gc --keep 1 keeps the newest.
	var gc snapGCOutput
	spJSON(t, &gc, append([]string{"snapshot", "gc", "--keep", "1", "--dry-run"}, sel...)...)
	if len(gc.Deleted) != 1 || len(gc.Kept) != 1 || gc.Kept[0] != c3.SnapshotID {
		t.Fatalf("gc --dry-run: %+v", gc)
	}
	spJSON(t, &l, append([]string{"snapshot", "list"}, sel...)...)
	if len(l.Snapshots) != 2 {
		t.Fatalf("gc --dry-run deleted something: %v", spIDs(l))
	}
	spJSON(t, &gc, append([]string{"snapshot", "gc", "--keep", "1"}, sel...)...)
	if len(gc.Deleted) != 1 || gc.Deleted[0] == c3.SnapshotID || !slices.Equal(gc.Kept, []string{c3.SnapshotID}) {
		t.Fatalf("gc: %+v", gc)
	}
	spJSON(t, &l, append([]string{"snapshot", "list"}, sel...)...)
	if !slices.Equal(spIDs(l), []string{c3.SnapshotID}) {
		t.Fatalf("after gc: %v", spIDs(l))
	}
	// Exactly the kept snapshot's blobs remain.
	var want []string
	for _, f := range m.Files {
		want = append(want, spKey(f.Blob))
	}
	want = append(want, spKey(snapshot.ManifestKey(spID, c3.SnapshotID)), snapshot.LayoutKey)
	slices.Sort(want)
	if got := spTree(t, repoDir); !slices.Equal(got, want) {
		t.Fatalf("repository after gc:\n got %v\nwant %v", got, want)
	}

	// unfinished: an old blob no manifest references is listed, then removed;
	// a young one is protected by the grace period.
	old := spObject(repoDir, snapshot.BlobPrefix(spID)+"seg_00000099_dead-000000000000")
	young := spObject(repoDir, snapshot.BlobPrefix(spID)+"seg_00000098_beef-000000000000")
	for _, p := range []string{old, young} {
		if err := os.WriteFile(p, []byte("partial upload"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	var u snapUnfinishedOutput
	spJSON(t, &u, append([]string{"snapshot", "unfinished"}, sel...)...)
	if len(u.Blobs) != 1 || !strings.HasSuffix(u.Blobs[0].Key, "seg_00000099_dead-000000000000") || u.Removed {
		t.Fatalf("unfinished: %+v", u)
	}
	// --remove marks it; it is deleted once marked longer than the delay.
	spJSON(t, &u, append([]string{"snapshot", "unfinished", "--grace", "1h", "--remove"}, sel...)...)
	if len(u.Blobs) != 1 || !u.Removed || len(u.Deleted) != 0 {
		t.Fatalf("unfinished --remove: %+v", u)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("old unfinished blob deleted before the deletion delay: %v", err)
	}
	spJSON(t, &u, append([]string{"snapshot", "unfinished", "--grace", "1h", "--remove", "--deletion-delay", "1ns"}, sel...)...)
	if len(u.Blobs) != 0 || len(u.Deleted) != 1 || !strings.HasSuffix(u.Deleted[0].Key, "seg_00000099_dead-000000000000") {
		t.Fatalf("unfinished --remove past the delay: %+v", u)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("old unfinished blob still there: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Fatalf("young blob removed: %v", err)
	}
}

func TestSnapshotDefaultRepoNextToData(t *testing.T) {
	spCleanEnv(t)
	data := t.TempDir()
	spWrite(t, data, 0, 10, 10)
	var c snapCreateOutput
	spJSON(t, &c, "snapshot", "create", "--data", data, "--index", "logs")
	if c.Repo != "file://"+filepath.Join(data, "snapshots") {
		t.Fatalf("default repository %s", c.Repo)
	}
	var l snapListOutput
	spJSON(t, &l, "snapshot", "list", "--data", data, "--index", "logs")
	if !slices.Equal(spIDs(l), []string{c.SnapshotID}) {
		t.Fatalf("list: %+v", l)
	}
}

func TestSnapshotCreateRefusesLockedShard(t *testing.T) {
	spCleanEnv(t)
	data := t.TempDir()
	spWrite(t, data, 0, 10, 10)
	s, err := shardstore.Open(data, spID, shardstore.Options{}) // "the daemon"
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	repo := "file://" + filepath.Join(t.TempDir(), "repo")
	_, err = spRun(t, "snapshot", "create", "--data", data, "--index", "logs", "--repo", repo)
	if err == nil || spIsUsage(err) || !strings.Contains(err.Error(), "daemon") {
		t.Fatalf("create on a locked shard: %v", err)
	}
}

func TestSnapshotGCRefusesCorruptManifest(t *testing.T) {
	spCleanEnv(t)
	data := t.TempDir()
	repoDir := filepath.Join(t.TempDir(), "repo")
	sel := []string{"--repo", "file://" + repoDir, "--index", "logs"}
	var ids []string
	for i := range 3 {
		spWrite(t, data, i*50, 50, 50)
		var c snapCreateOutput
		spJSON(t, &c, append([]string{"snapshot", "create", "--data", data}, sel...)...)
		ids = append(ids, c.SnapshotID)
		time.Sleep(2 * time.Millisecond)
	}
	// Damage the middle manifest.
	bad := spObject(repoDir, snapshot.ManifestKey(spID, ids[1]))
	if err := os.WriteFile(bad, []byte(`{"manifest_version": 1, "snapshot_id": garbage`), 0o644); err != nil {
		t.Fatal(err)
	}
	before := spTree(t, repoDir)

	_, err := spRun(t, append([]string{"snapshot", "gc", "--keep", "1"}, sel...)...)
	if err == nil || spIsUsage(err) || !errors.Is(err, snapshot.ErrCorruptManifest) || !strings.Contains(err.Error(), "nothing deleted") {
		t.Fatalf("gc with a corrupt manifest: %v", err)
	}
	if _, err := spRun(t, append([]string{"snapshot", "gc", "--keep", "1", "--dry-run"}, sel...)...); err == nil {
		t.Fatal("gc --dry-run with a corrupt manifest succeeded")
	}
	if after := spTree(t, repoDir); !slices.Equal(before, after) {
		t.Fatalf("gc deleted something:\nbefore %v\nafter  %v", before, after)
	}

	// list shows the corrupt manifest with its error, never hides it.
	var l snapListOutput
	spJSON(t, &l, append([]string{"snapshot", "list"}, sel...)...)
	if !slices.Equal(spIDs(l), ids) || l.Corrupt != 1 || l.Snapshots[1].Error == "" || l.Snapshots[0].Error != "" {
		t.Fatalf("list with a corrupt manifest: %+v", l)
	}
	text := spMust(t, append([]string{"snapshot", "list"}, sel...)...)
	if !strings.Contains(text, ids[1]) || !strings.Contains(text, "CORRUPT") {
		t.Fatalf("list text hides the corrupt manifest:\n%s", text)
	}
	// show of the corrupt one fails (exit 1); --latest passes over nothing
	// here (the newest reads).
	if _, err := spRun(t, append([]string{"snapshot", "show", ids[1]}, sel...)...); !errors.Is(err, snapshot.ErrCorruptManifest) {
		t.Fatalf("show corrupt: %v", err)
	}
	// unfinished refuses too.
	if _, err := spRun(t, append([]string{"snapshot", "unfinished", "--grace", "0s", "--remove"}, sel...)...); err == nil {
		t.Fatal("unfinished --remove with a corrupt manifest succeeded")
	}
	if after := spTree(t, repoDir); !slices.Equal(before, after) {
		t.Fatalf("unfinished deleted something:\nbefore %v\nafter  %v", before, after)
	}

	// Deleting the corrupt manifest keeps its (unknown) blobs; then gc runs.
	var d snapDeleteOutput
	spJSON(t, &d, append([]string{"snapshot", "delete", ids[1]}, sel...)...)
	if d.KeptBlobs == "" {
		t.Fatalf("delete of a corrupt manifest: %+v", d)
	}
	var gc snapGCOutput
	spJSON(t, &gc, append([]string{"snapshot", "gc", "--keep", "1"}, sel...)...)
	if !slices.Equal(gc.Deleted, ids[:1]) || !slices.Equal(gc.Kept, ids[2:]) {
		t.Fatalf("gc after removing the corrupt manifest: %+v", gc)
	}
}

func TestSnapshotListUnreachableS3IsAnError(t *testing.T) {
	spCleanEnv(t)
	const secret = "s3cr3t-never-printed"
	t.Setenv("RECOVERD_S3_ACCESS_KEY", "test-access")
	t.Setenv("RECOVERD_S3_SECRET_KEY", secret)
	repo := "s3://b/p?endpoint=127.0.0.1:1&tls=false"
	start := time.Now()
	out, err := spRun(t, "snapshot", "list", "--repo", repo, "--index", "logs", "--retry-for", "300ms", "-o", "json")
	if err == nil || spIsUsage(err) || !errors.Is(err, snapshot.ErrUnavailable) {
		t.Fatalf("list on an unreachable repository: err %v, output %q", err, out)
	}
	if out != "" {
		t.Fatalf("list on an unreachable repository printed %q", out)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("the error shows the secret: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("--retry-for 300ms took %v", d)
	}
	// plan calls the same repository unavailable and goes to the peer.
	src, tgt := t.TempDir(), t.TempDir()
	spWrite(t, src, 0, 10, 10)
	var p planOutput
	spJSON(t, &p, "plan", "--source-data", src, "--target-data", tgt, "--index", "logs", "--repo", repo, "--retry-for", "0s")
	if p.Kind != "peer" || p.Input.Snapshot.State != "unavailable" || p.Input.Snapshot.Err == "" || strings.Contains(p.Input.Snapshot.Err, secret) {
		t.Fatalf("plan with an unreachable repository: kind %s, snapshot %+v", p.Kind, p.Input.Snapshot)
	}
}

func TestSnapshotUsageErrors(t *testing.T) {
	spCleanEnv(t)
	repo := "file://" + t.TempDir()
	for _, args := range [][]string{
		{"snapshot", "list", "--repo", repo},                                 // no --index
		{"snapshot", "list", "--index", "logs"},                              // no repository
		{"snapshot", "list", "--index", "logs", "--repo", "ftp://x/y"},       // scheme
		{"snapshot", "list", "--index", "logs", "--repo", "s3://ak:sk@b/p"},  // credentials in the URL
		{"snapshot", "list", "--index", "logs", "--repo", "file://relative"}, // not absolute
		{"snapshot", "list", "--index", "../x", "--repo", repo},
		{"snapshot", "show", "--index", "logs", "--repo", repo},
		{"snapshot", "show", "--index", "logs", "--repo", repo, "not-an-id"},
		{"snapshot", "delete", "--index", "logs", "--repo", repo},
		{"snapshot", "gc", "--index", "logs", "--repo", repo},                 // no --keep
		{"snapshot", "gc", "--index", "logs", "--repo", repo, "--keep", "-1"}, // negative
		{"snapshot", "create", "--index", "logs", "--repo", repo},             // no --data
	} {
		if _, err := spRun(t, args...); !spIsUsage(err) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if _, err := spRun(t, "snapshot", "list", "--index", "logs", "--repo", "s3://ak:hunter2@b/p"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("credentials in the URL: %v", err)
	}
	// A local repository that does not exist is an error, not an empty list
	// (and is not created).
	missing := filepath.Join(t.TempDir(), "typo")
	if _, err := spRun(t, "snapshot", "list", "--index", "logs", "--repo", "file://"+missing); err == nil || spIsUsage(err) {
		t.Errorf("list on a missing directory: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("list created the repository directory: %v", err)
	}
}

func TestSnapshotHelpHasExamples(t *testing.T) {
	for _, sub := range []string{"create", "list", "show", "delete", "gc", "unfinished"} {
		out := spMust(t, "snapshot", sub, "--help")
		if !strings.Contains(out, "Examples:") || !strings.Contains(out, "recoverctl snapshot "+sub) {
			t.Errorf("snapshot %s --help has no example:\n%s", sub, out)
		}
	}
}

// spKey is where recoverctl, which made the repository, stores a key: a
// repository made by recoverd or recoverctl has the hashed layout.
func spKey(key string) string {
	return filepath.FromSlash(snapshot.ObjectKey(snapshot.LayoutHashed, key))
}

// spObject is the file of a key in the repository directory.
func spObject(repoDir, key string) string { return filepath.Join(repoDir, spKey(key)) }
