package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/recoverd/recoverd/snapshot"
)

// TestRepoFlagsAsRecoverdTakesThem: recoverctl names a repository as
// recoverd does: the URL's query, the --s3-* flags, or both when they
// agree; a disagreement is a usage error naming both.
func TestRepoFlagsAsRecoverdTakesThem(t *testing.T) {
	spCleanEnv(t)
	t.Setenv("RECOVERD_S3_ACCESS_KEY", "test-access")
	t.Setenv("RECOVERD_S3_SECRET_KEY", "test-secret")
	for _, args := range [][]string{
		{"--repo", "s3://b/p?endpoint=127.0.0.1:1&tls=false"},
		{"--repo", "s3://b/p", "--s3-endpoint", "127.0.0.1:1", "--s3-insecure"},
		{"--repo", "s3://b/p?endpoint=127.0.0.1:1", "--s3-endpoint", "http://127.0.0.1:1", "--s3-region", "eu-west-1"},
	} {
		_, err := spRun(t, append([]string{"snapshot", "list", "--index", "logs", "--retry-for", "0s"}, args...)...)
		// The repository was named and opened: the closed port answers.
		if err == nil || spIsUsage(err) || !errors.Is(err, snapshot.ErrUnavailable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("%v: %v, want the repository at 127.0.0.1:1 unavailable", args, err)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--repo", "s3://b/p?endpoint=a:9000", "--s3-endpoint", "b:9000"}, "the URL says endpoint=a:9000, --s3-endpoint says b:9000"},
		{[]string{"--repo", "s3://b/p?region=eu", "--s3-region", "us"}, "the URL says region=eu, --s3-region says us"},
		{[]string{"--repo", "s3://b/p?tls=true", "--s3-insecure"}, "--s3-insecure says TLS off"},
		{[]string{"--repo", "file://" + t.TempDir(), "--s3-endpoint", "a:9000"}, "are for an s3:// repository"},
	} {
		_, err := spRun(t, append([]string{"snapshot", "verify"}, c.args...)...)
		if !spIsUsage(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want a usage error with %q", c.args, err, c.want)
		}
	}
	// plan takes the same flags.
	src, tgt := t.TempDir(), t.TempDir()
	spWrite(t, src, 0, 10, 10)
	var p planOutput
	spJSON(t, &p, "plan", "--source-data", src, "--target-data", tgt, "--index", "logs", "--repo", "s3://b/p",
		"--s3-endpoint", "127.0.0.1:1", "--s3-insecure", "--retry-for", "0s")
	if p.Input.Snapshot.State != "unavailable" || !strings.Contains(p.Input.Snapshot.Err, "127.0.0.1:1") {
		t.Fatalf("plan with --s3-endpoint: snapshot %+v", p.Input.Snapshot)
	}
}
