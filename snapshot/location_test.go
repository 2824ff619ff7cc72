package snapshot

import (
	"strings"
	"testing"
)

// TestParseLocation: the URL's query and the flags beside it name the same
// settings; both forms work alone, together when they agree, and are
// refused, both named, when they disagree.
func TestParseLocation(t *testing.T) {
	on, off := true, false
	for _, c := range []struct {
		url     string
		flags   LocationFlags
		want    Location
		wantErr string
	}{
		{url: "file:///var/repo/", want: Location{Scheme: "file", Path: "/var/repo"}},
		{url: "s3://b/p/q?endpoint=minio:9000&region=eu&tls=false",
			want: Location{Scheme: "s3", Bucket: "b", Prefix: "p/q", Endpoint: "minio:9000", Region: "eu", TLS: &off}},
		{url: "s3://b/p", flags: LocationFlags{Endpoint: "minio:9000", Region: "eu", Insecure: true},
			want: Location{Scheme: "s3", Bucket: "b", Prefix: "p", Endpoint: "minio:9000", Region: "eu", TLS: &off}},
		{url: "s3://b", flags: LocationFlags{Endpoint: "https://minio:9000"}, want: Location{Scheme: "s3", Bucket: "b", Endpoint: "minio:9000", TLS: &on}},
		{url: "s3://b?endpoint=http://minio:9000", want: Location{Scheme: "s3", Bucket: "b", Endpoint: "minio:9000", TLS: &off}},
		{url: "s3://b", want: Location{Scheme: "s3", Bucket: "b"}},
		// Both ways, agreeing.
		{url: "s3://b/p?endpoint=minio:9000&tls=false", flags: LocationFlags{Endpoint: "http://minio:9000", Insecure: true},
			want: Location{Scheme: "s3", Bucket: "b", Prefix: "p", Endpoint: "minio:9000", TLS: &off}},
		{url: "s3://b?region=eu", flags: LocationFlags{Region: "eu"}, want: Location{Scheme: "s3", Bucket: "b", Region: "eu"}},
		// Both ways, disagreeing.
		{url: "s3://b?endpoint=minio:9000", flags: LocationFlags{Endpoint: "other:9000"},
			wantErr: "endpoint is given two ways that disagree: the URL says endpoint=minio:9000, --s3-endpoint says other:9000"},
		{url: "s3://b?region=eu", flags: LocationFlags{Region: "us"}, wantErr: "region is given two ways that disagree: the URL says region=eu, --s3-region says us"},
		{url: "s3://b?tls=true", flags: LocationFlags{Insecure: true}, wantErr: "the URL says tls=true, --s3-insecure says TLS off"},
		{url: "s3://b?endpoint=https://minio:9000", flags: LocationFlags{Insecure: true}, wantErr: "says TLS on, --s3-insecure says TLS off"},
		{url: "s3://b?tls=false", flags: LocationFlags{Endpoint: "https://minio:9000"}, wantErr: "the URL says tls=false, --s3-endpoint https://minio:9000 says TLS on"},
		// Names that are wrong whatever the flags.
		{url: "file:///var/repo", flags: LocationFlags{Endpoint: "minio:9000"}, wantErr: "are for an s3:// repository"},
		{url: "file://relative/path", wantErr: "file:///absolute/path"},
		{url: "file:relative", wantErr: "file:///absolute/path"},
		{url: "file:///x?y=1", wantErr: "no query parameters"},
		{url: "s3:///p", wantErr: "needs a bucket"},
		{url: "s3://b?bogus=1", wantErr: `unknown parameter "bogus"`},
		{url: "s3://b?tls=maybe", wantErr: "is not a boolean"},
		{url: "s3://b?region=a&region=b", wantErr: "region given 2 times"},
		{url: "s3://b", flags: LocationFlags{Endpoint: "ftp://x"}, wantErr: "not http or https"},
		{url: "ftp://x/y", wantErr: `scheme "ftp" not supported`},
		{url: "s3://AKID:very-secret@b/p", wantErr: "must not hold credentials"},
		{url: "%zz-very-secret", wantErr: "does not parse"},
	} {
		got, err := ParseLocation(c.url, c.flags)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseLocation(%q, %+v) = %+v, %v; want an error with %q", c.url, c.flags, got, err, c.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "very-secret") {
				t.Errorf("the error echoes a secret: %v", err)
			}
			continue
		}
		if err != nil || got.Scheme != c.want.Scheme || got.Path != c.want.Path || got.Bucket != c.want.Bucket || got.Prefix != c.want.Prefix ||
			got.Endpoint != c.want.Endpoint || got.Region != c.want.Region || (got.TLS == nil) != (c.want.TLS == nil) ||
			(got.TLS != nil && *got.TLS != *c.want.TLS) {
			t.Errorf("ParseLocation(%q, %+v) = %+v (TLS %v), %v; want %+v (TLS %v)", c.url, c.flags, got, got.TLS, err, c.want, c.want.TLS)
		}
	}
}

// TestOpenRepositoryOneName: the query form and the flag form open the
// same repository; a TLS setting said either way wins over the
// environment's RECOVERD_S3_INSECURE.
func TestOpenRepositoryOneName(t *testing.T) {
	env := func(k string) string {
		if k == "RECOVERD_S3_INSECURE" {
			return "true"
		}
		return ""
	}
	a, err := OpenRepository("s3://b/p?endpoint=minio:9000&region=eu&tls=true", S3Options{Getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenRepository("s3://b/p", S3Options{Endpoint: "https://minio:9000", Region: "eu", Getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const want = "s3://b/p (endpoint minio:9000, region eu, tls on)"
	if a.String() != want || b.String() != want {
		t.Fatalf("query form %q, flag form %q; want %q", a, b, want)
	}
	c, err := OpenRepository("s3://b/p?endpoint=minio:9000", S3Options{Getenv: env})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.String() != "s3://b/p (endpoint minio:9000, region us-east-1, tls off)" {
		t.Fatalf("TLS left to the environment: %q", c)
	}
	if _, err := OpenRepository("s3://b/p?endpoint=minio:9000", S3Options{Endpoint: "other:9000"}); err == nil {
		t.Fatal("two endpoints opened a repository")
	}
}
