package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/recoverd/recoverd/internal/retry"
)

// TestRepoNamedOneWay: --repo takes the s3 settings in its query, the
// --s3-* flags (and their RECOVERD_S3_* variables) name the same ones;
// either form opens the same repository, both when they agree, and a
// disagreement is bad configuration (exit code 2) naming both.
func TestRepoNamedOneWay(t *testing.T) {
	open := func(args ...string) string {
		t.Helper()
		cfg, _, err := loadConfig(append([]string{"--data", t.TempDir()}, args...), envOf(nil), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		repo, err := openRepo(cfg, nil, retry.Options{})
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		defer repo.Close()
		return repo.String()
	}
	query := open("--repo", "s3://snaps/prod?endpoint=127.0.0.1:9000&region=eu-west-1&tls=false")
	flags := open("--repo", "s3://snaps/prod", "--s3-endpoint", "127.0.0.1:9000", "--s3-region", "eu-west-1", "--s3-insecure")
	both := open("--repo", "s3://snaps/prod?endpoint=127.0.0.1:9000&tls=false", "--s3-endpoint", "http://127.0.0.1:9000", "--s3-region", "eu-west-1")
	if want := "s3://snaps/prod (endpoint 127.0.0.1:9000, region eu-west-1, tls off)"; query != want || flags != want || both != want {
		t.Fatalf("query form %q, flag form %q, both %q; want %q", query, flags, both, want)
	}

	for name, c := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"two endpoints": {args: []string{"--repo", "s3://b/p?endpoint=a:9000", "--s3-endpoint", "b:9000"},
			want: "the URL says endpoint=a:9000, --s3-endpoint says b:9000"},
		"endpoint from the environment": {args: []string{"--repo", "s3://b/p?endpoint=a:9000"}, env: map[string]string{"RECOVERD_S3_ENDPOINT": "b:9000"},
			want: "--s3-endpoint says b:9000"},
		"tls on and insecure":        {args: []string{"--repo", "s3://b/p?tls=true", "--s3-insecure"}, want: "the URL says tls=true, --s3-insecure says TLS off"},
		"s3 flags, local repository": {args: []string{"--s3-endpoint", "a:9000"}, want: "are for an s3:// repository"},
		"relative local path":        {args: []string{"--repo", "file://snapshots"}, want: "file:///absolute/path"},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"--data", t.TempDir(), "--insecure"}, c.args...)
		if code := run(args, envOf(c.env), &out, &errb); code != 2 || !strings.Contains(errb.String(), "--repo: ") || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%s: exit %d, want 2 with %q; stderr: %s", name, code, c.want, errb.String())
		}
	}
}
