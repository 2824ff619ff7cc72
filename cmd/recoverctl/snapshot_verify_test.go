package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recoverd/recoverd/snapshot"
)

// TestSnapshotVerify: verify exits 0 on a sound repository; after a blob
// is corrupted it lists the blob with the file and snapshot, marks it bad
// and exits 1 (-o json too, with the report); the next snapshot uploads
// the file again; once the blob is repaired verify clears the mark.
func TestSnapshotVerify(t *testing.T) {
	spCleanEnv(t)
	data := t.TempDir()
	repoDir := filepath.Join(t.TempDir(), "repo")
	repo := "file://" + repoDir
	sel := []string{"--repo", repo, "--index", "logs", "--shard", "0"}
	spWrite(t, data, 0, 300, 100)
	var c1 snapCreateOutput
	spJSON(t, &c1, append([]string{"snapshot", "create", "--data", data}, sel...)...)

	var ok snapVerifyOutput
	spJSON(t, &ok, "snapshot", "verify", "--repo", repo, "--throttle", "10MB")
	if !ok.OK || ok.Shards != 1 || ok.Snapshots != 1 || ok.Blobs != 3 || ok.Bytes <= 0 || len(ok.Scope) != 0 {
		t.Fatalf("sound repository: %+v", ok)
	}

	var m snapshot.Manifest
	spJSON(t, &m, append([]string{"snapshot", "show", "--latest"}, sel...)...)
	victim := m.Files[1]
	path := spObject(repoDir, victim.Blob)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), orig...)
	bad[len(bad)/2] ^= 0x55
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := spRun(t, "snapshot", "verify", "--repo", repo, "--shard", "logs/0", "-o", "json")
	var ee exitError
	if !errors.As(err, &ee) || ee.code != exitFailed {
		t.Fatalf("verify of a damaged repository: err %v, want exit code 1", err)
	}
	var rep snapVerifyOutput
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if rep.OK || len(rep.Corrupt) != 1 || len(rep.Missing) != 0 || rep.Scope[0] != "logs/0" {
		t.Fatalf("report %+v", rep)
	}
	c := rep.Corrupt[0]
	if c.Blob != victim.Blob || c.Refs[0].File != victim.Name || c.Refs[0].Snapshot != m.ID || !c.Marked || !strings.Contains(c.Detail, "checksum") {
		t.Fatalf("corrupt blob %+v, want %s of %s marked", c, victim.Blob, victim.Name)
	}
	marks, err := snapshot.BadBlobs(context.Background(), mustLocal(t, repoDir), spID)
	if err != nil || !marks[victim.Blob] {
		t.Fatalf("marks %v, %v", marks, err)
	}
	// Text: the blob, the file, the snapshot; the mark is already there.
	out, err = spRun(t, "snapshot", "verify", "--repo", repo, "--index", "logs", "--read-only")
	if !errors.As(err, &ee) || ee.code != exitFailed {
		t.Fatalf("text verify: err %v, want exit code 1", err)
	}
	for _, want := range []string{"CORRUPT", victim.Blob, victim.Name + " in " + m.ID, "1 corrupt", "read-only: not marked"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}

	// The next snapshot uploads the file again, under a new key.
	var c2 snapCreateOutput
	spJSON(t, &c2, append([]string{"snapshot", "create", "--data", data}, sel...)...)
	if c2.UploadedFiles != 1 || c2.ReusedFiles != 2 {
		t.Fatalf("the snapshot after the damage: %+v", c2)
	}
	spJSON(t, &m, append([]string{"snapshot", "show", "--latest"}, sel...)...)
	if f, _ := m.Lookup(victim.Name); f.Blob == victim.Blob {
		t.Fatalf("%s still in the bad blob %s", victim.Name, f.Blob)
	}

	// Repaired: verify clears the mark and exits 0.
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	spJSON(t, &ok, "snapshot", "verify", "--repo", repo)
	if !ok.OK || len(ok.Cleared) != 1 || ok.Cleared[0].Blob != victim.Blob {
		t.Fatalf("after the repair: %+v", ok)
	}

	for _, args := range [][]string{
		{"--shard", "logs"},
		{"--shard", "logs/0", "--index", "logs"},
		{"--throttle", "fast"},
		{"--concurrency", "0"},
	} {
		if _, err := spRun(t, append([]string{"snapshot", "verify", "--repo", repo}, args...)...); !spIsUsage(err) {
			t.Errorf("verify %v: err %v, want a usage error", args, err)
		}
	}
	if _, err := spRun(t, "snapshot", "verify", "--repo", "file://"+filepath.Join(t.TempDir(), "nothing")); err == nil || spIsUsage(err) {
		t.Errorf("a repository that does not exist: err %v, want a failure", err)
	}
}

func mustLocal(t *testing.T, dir string) snapshot.Repository {
	t.Helper()
	r, err := snapshot.OpenRepository("file://"+dir, snapshot.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
