package snapshot

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/internal/testutil"
)

// TestS3 runs everything that needs a healthy MinIO against one server;
// each subtest has its own bucket. Tests that stop, kill or pause the
// server start their own (faults_test.go).
func TestS3(t *testing.T) {
	m := testutil.StartMinIO(t)
	newRepo := func(t *testing.T) Repository { return newS3Repo(t, m, S3Options{}) }

	t.Run("Contract", func(t *testing.T) { testRepository(t, newRepo) })
	t.Run("Snapshots", func(t *testing.T) { testSnapshots(t, newRepo) })
	t.Run("Downloads", func(t *testing.T) { testDownloads(t, newRepo, corruptS3Blob) })

	t.Run("NoPrefix", func(t *testing.T) {
		r := newS3RepoIn(t, m, m.MakeBucket("noprefix"), "", S3Options{})
		ctx := ctxTimeout(t, time.Minute)
		if err := r.Put(ctx, "a/b", strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
		keys, err := r.List(ctx, "")
		if err != nil || len(keys) != 1 || keys[0] != "a/b" {
			t.Fatalf("list = %q, %v", keys, err)
		}
	})

	t.Run("BucketMissing", func(t *testing.T) {
		r := newS3RepoIn(t, m, "no-such-bucket-here", "p", S3Options{})
		ctx := ctxTimeout(t, time.Minute)
		start := time.Now()
		_, err := r.List(ctx, "")
		checkUnavailable(t, "list", err)
		if retry.IsTransient(err) {
			t.Fatalf("a missing bucket is retried: %v", err)
		}
		if !strings.Contains(err.Error(), "no-such-bucket-here") {
			t.Fatalf("error does not name the bucket: %v", err)
		}
		_, err = r.Get(ctx, "k")
		checkUnavailable(t, "get", err)
		_, err = r.Stat(ctx, "k")
		checkUnavailable(t, "stat", err)
		checkUnavailable(t, "put", r.Put(ctx, "k", strings.NewReader("x"), 1))
		_, err = Latest(ctx, r, testShard)
		checkUnavailable(t, "latest", err)
		_, err = List(ctx, r, testShard)
		checkUnavailable(t, "snapshot list", err)
		_, err = GC(ctx, r, testShard, 1, DeleteOptions{})
		checkUnavailable(t, "gc", err)
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("permanent errors took %v: retried?", d)
		}
	})

	t.Run("WrongCredentials", func(t *testing.T) {
		r, err := NewS3Repository(m.MakeBucket("creds"), "p", S3Options{
			Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: "not-the-secret-key", DisableTLS: true,
			Getenv: func(string) string { return "" },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		ctx := ctxTimeout(t, time.Minute)
		start := time.Now()
		for name, err := range map[string]error{
			"list": func() error { _, err := r.List(ctx, ""); return err }(),
			"get":  func() error { _, err := r.Get(ctx, "k"); return err }(),
			"put":  r.Put(ctx, "k", strings.NewReader("x"), 1),
			"latest": func() error {
				_, err := Latest(ctx, r, testShard)
				return err
			}(),
		} {
			if !errors.Is(err, ErrAccessDenied) || !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
				t.Fatalf("%s with a wrong secret: %v, want ErrAccessDenied (and ErrUnavailable)", name, err)
			}
			if retry.IsTransient(err) {
				t.Fatalf("%s: access denied is retried: %v", name, err)
			}
			if strings.Contains(err.Error(), "not-the-secret-key") {
				t.Fatalf("%s: error shows the secret: %v", name, err)
			}
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("permanent errors took %v: retried?", d)
		}
		// Wrong access key too.
		bad, err := NewS3Repository(r.Bucket(), "p", S3Options{
			Endpoint: m.Endpoint, AccessKey: "nobody", SecretKey: m.SecretKey, DisableTLS: true,
			Getenv: func(string) string { return "" },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer bad.Close()
		if _, err := bad.List(ctx, ""); !errors.Is(err, ErrAccessDenied) {
			t.Fatalf("list with an unknown access key: %v", err)
		}
	})

	t.Run("OpenRepositoryURL", func(t *testing.T) {
		bucket := m.MakeBucket("url")
		env := map[string]string{
			"RECOVERD_S3_ACCESS_KEY": m.AccessKey,
			"RECOVERD_S3_SECRET_KEY": m.SecretKey,
			"AWS_ACCESS_KEY_ID":      "ignored",
			"AWS_SECRET_ACCESS_KEY":  "ignored-too",
		}
		url := fmt.Sprintf("s3://%s/some/prefix?endpoint=%s&region=us-east-1&tls=false", bucket, m.Endpoint)
		repo, err := OpenRepository(url, S3Options{Getenv: func(k string) string { return env[k] }})
		if err != nil {
			t.Fatal(err)
		}
		defer repo.Close()
		ctx := ctxTimeout(t, time.Minute)
		if err := repo.Put(ctx, "k", strings.NewReader("v"), 1); err != nil {
			t.Fatal(err)
		}
		// The object is under the prefix.
		direct := newS3RepoIn(t, m, bucket, "", S3Options{})
		if _, err := direct.Stat(ctx, "some/prefix/k"); err != nil {
			t.Fatalf("object not under the URL's prefix: %v", err)
		}
		want := fmt.Sprintf("s3://%s/some/prefix (endpoint %s, region us-east-1, tls off)", bucket, m.Endpoint)
		if repo.String() != want {
			t.Fatalf("String() = %q, want %q", repo.String(), want)
		}
		checkNoSecret(t, repo, m.SecretKey)

		// AWS_* when RECOVERD_S3_* are unset; endpoint from the env.
		env = map[string]string{
			"AWS_ACCESS_KEY_ID":     m.AccessKey,
			"AWS_SECRET_ACCESS_KEY": m.SecretKey,
			"RECOVERD_S3_ENDPOINT":  "http://" + m.Endpoint,
		}
		repo2, err := OpenRepository("s3://"+bucket+"/some/prefix", S3Options{Getenv: func(k string) string { return env[k] }})
		if err != nil {
			t.Fatal(err)
		}
		defer repo2.Close()
		if _, err := repo2.Stat(ctx, "k"); err != nil {
			t.Fatalf("stat through AWS_* credentials: %v", err)
		}
		checkNoSecret(t, repo2, m.SecretKey)
	})
}

func TestS3OptionsNoSecrets(t *testing.T) {
	opts := S3Options{Endpoint: "127.0.0.1:1", AccessKey: "AKID", SecretKey: "very-secret-value", SessionToken: "tok-secret-value", DisableTLS: true}
	for _, s := range []string{fmt.Sprint(opts), fmt.Sprintf("%v %+v %#v %s", opts, opts, opts, opts), fmt.Sprintf("%+v", &opts)} {
		if strings.Contains(s, "very-secret-value") || strings.Contains(s, "tok-secret-value") {
			t.Fatalf("options print a secret: %s", s)
		}
	}
	r, err := NewS3Repository("bucket", "p", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkNoSecret(t, r, "very-secret-value")
	checkNoSecret(t, r, "tok-secret-value")

	// Credentials in a URL are refused without being echoed.
	_, err = OpenRepository("s3://AKID:very-secret-value@bucket/p", S3Options{})
	if err == nil || strings.Contains(err.Error(), "very-secret-value") {
		t.Fatalf("URL with credentials: %v", err)
	}
	// A request that fails names no secret either.
	ctx := ctxTimeout(t, 30*time.Second)
	_, err = r.Stat(ctx, "k")
	if err == nil || strings.Contains(err.Error(), "very-secret-value") {
		t.Fatalf("stat against a closed port: %v", err)
	}
	checkUnavailable(t, "stat against a closed port", err)
	if !retry.IsTransient(err) {
		t.Fatalf("connection refused is not transient: %v", err)
	}
}

func TestOpenRepositoryErrors(t *testing.T) {
	for _, u := range []string{
		"ftp://x/y", "file://host/path", "s3:///prefix", "s3://b/p?bogus=1", "s3://b/p?tls=maybe",
		"s3://b/../x", "file:///tmp/x?y=1", "%zz",
	} {
		r, err := OpenRepository(u, S3Options{Getenv: func(string) string { return "" }})
		if err == nil {
			r.Close()
			t.Errorf("OpenRepository(%q): no error", u)
		}
	}
	dir := t.TempDir()
	r, err := OpenRepository("file://"+dir+"/repo", S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.String() != "file://"+dir+"/repo" {
		t.Fatalf("String() = %q", r.String())
	}
}

func checkUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
		t.Fatalf("%s: %v, want ErrUnavailable and not ErrNotFound", what, err)
	}
}

func checkNoSecret(t *testing.T, r Repository, secret string) {
	t.Helper()
	for _, s := range []string{r.String(), fmt.Sprint(r), fmt.Sprintf("%v %+v %#v %s", r, r, r, r)} {
		if strings.Contains(s, secret) {
			t.Fatalf("repository prints its secret: %s", s)
		}
	}
}
