package snapshot

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// Naming a repository, one way for recoverd and recoverctl. A repository
// is a URL:
//
//	file:///abs/path
//	s3://bucket[/prefix][?endpoint=host:port&region=r&tls=false]
//
// and, for s3, the same settings may be given beside it as flags (both
// commands take --s3-endpoint, --s3-region and --s3-insecure). Both forms
// are accepted and merged; a setting given both ways must agree, or the
// repository is refused with an error that names both. What neither says
// comes from the environment (RECOVERD_S3_*, then AWS_*; S3Options).

// LocationFlags are the settings given beside a repository URL.
type LocationFlags struct {
	// Endpoint is host:port, or http(s)://host:port (the scheme says
	// whether TLS is used).
	Endpoint string
	// Region is the S3 region.
	Region string
	// Insecure asks for plain HTTP.
	Insecure bool
}

func (f LocationFlags) empty() bool { return f == LocationFlags{} }

// Location is a repository as ParseLocation understood it.
type Location struct {
	Scheme string // "file" or "s3"
	// Path is a local repository's directory.
	Path string
	// Bucket and Prefix are an S3 repository's.
	Bucket, Prefix string
	// Endpoint (host:port) and Region of an S3 repository; empty: from
	// the environment, else the defaults.
	Endpoint, Region string
	// TLS is whether an S3 repository is reached over TLS; nil: from the
	// environment (RECOVERD_S3_INSECURE), else on.
	TLS *bool
}

// statement is one setting and where it was said.
type statement struct{ value, where string }

// agree returns the value the statements make, or an error when two say
// different things.
func agree(setting string, ss ...statement) (string, error) {
	var got statement
	for _, s := range ss {
		if s.value == "" {
			continue
		}
		if got.value != "" && got.value != s.value {
			return "", fmt.Errorf("snapshot: the repository's %s is given two ways that disagree: %s, %s; give it once, in the URL's query or as a flag",
				setting, got.where, s.where)
		}
		if got.value == "" {
			got = s
		}
	}
	return got.value, nil
}

// splitEndpoint takes host:port or http(s)://host:port apart: the host,
// and "true"/"false" for TLS when a scheme says so.
func splitEndpoint(e string) (host, tls string, err error) {
	if !strings.Contains(e, "://") {
		return e, "", nil
	}
	u, err := url.Parse(e)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" {
		return "", "", fmt.Errorf("snapshot: S3 endpoint must be host:port or http(s)://host:port")
	}
	switch u.Scheme {
	case "http":
		return u.Host, "false", nil
	case "https":
		return u.Host, "true", nil
	}
	return "", "", fmt.Errorf("snapshot: S3 endpoint scheme %q is not http or https", u.Scheme)
}

// ParseLocation reads a repository URL and the flags given beside it. It
// makes no request. Errors say what is wrong with the name: a URL that
// does not parse (its text is not echoed: it may hold a secret),
// credentials in the URL, an unknown scheme or query parameter, a relative
// local path, S3 flags for a local repository, or a setting given both
// ways with two values.
func ParseLocation(rawURL string, f LocationFlags) (Location, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return Location{}, fmt.Errorf("snapshot: repository URL does not parse (file:///abs/path or s3://bucket/prefix)")
	}
	if u.User != nil {
		return Location{}, fmt.Errorf("snapshot: repository URL must not hold credentials; use RECOVERD_S3_ACCESS_KEY / RECOVERD_S3_SECRET_KEY or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("snapshot: file repository URL %q has host %q; use file:///absolute/path", u.Redacted(), u.Host)
		}
		if u.Opaque != "" || !filepath.IsAbs(u.Path) {
			return Location{}, fmt.Errorf("snapshot: file repository URL %q: use file:///absolute/path", u.Redacted())
		}
		if u.RawQuery != "" {
			return Location{}, fmt.Errorf("snapshot: file repository URL takes no query parameters")
		}
		if !f.empty() {
			return Location{}, fmt.Errorf("snapshot: --s3-endpoint, --s3-region and --s3-insecure are for an s3:// repository, not %s", u.Redacted())
		}
		return Location{Scheme: "file", Path: filepath.Clean(u.Path)}, nil
	case "s3":
	default:
		return Location{}, fmt.Errorf("snapshot: repository URL scheme %q not supported (file:// or s3://)", u.Scheme)
	}
	if u.Host == "" {
		return Location{}, fmt.Errorf("snapshot: s3 repository URL needs a bucket: s3://bucket/prefix")
	}
	q := u.Query()
	for k, v := range q {
		switch k {
		case "endpoint", "region", "tls":
			if len(v) > 1 {
				return Location{}, fmt.Errorf("snapshot: s3 repository URL: %s given %d times", k, len(v))
			}
		default:
			return Location{}, fmt.Errorf("snapshot: s3 repository URL: unknown parameter %q (endpoint, region, tls)", k)
		}
	}
	loc := Location{Scheme: "s3", Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	qHost, qTLS, err := splitEndpoint(q.Get("endpoint"))
	if err != nil {
		return Location{}, err
	}
	fHost, fTLS, err := splitEndpoint(f.Endpoint)
	if err != nil {
		return Location{}, fmt.Errorf("--s3-endpoint: %w", err)
	}
	if loc.Endpoint, err = agree("endpoint", statement{qHost, "the URL says endpoint=" + q.Get("endpoint")},
		statement{fHost, "--s3-endpoint says " + f.Endpoint}); err != nil {
		return Location{}, err
	}
	if loc.Region, err = agree("region", statement{q.Get("region"), "the URL says region=" + q.Get("region")},
		statement{f.Region, "--s3-region says " + f.Region}); err != nil {
		return Location{}, err
	}
	tlsParam := q.Get("tls")
	if tlsParam != "" {
		on, err := strconv.ParseBool(tlsParam)
		if err != nil {
			return Location{}, fmt.Errorf("snapshot: s3 repository URL: tls=%q is not a boolean", tlsParam)
		}
		tlsParam = strconv.FormatBool(on)
	}
	insecure := ""
	if f.Insecure {
		insecure = "false"
	}
	tls, err := agree("TLS setting",
		statement{tlsParam, "the URL says tls=" + q.Get("tls")},
		statement{qTLS, "the URL's endpoint=" + q.Get("endpoint") + " says TLS " + onOff(qTLS)},
		statement{fTLS, "--s3-endpoint " + f.Endpoint + " says TLS " + onOff(fTLS)},
		statement{insecure, "--s3-insecure says TLS off"})
	if err != nil {
		return Location{}, err
	}
	if tls != "" {
		on := tls == "true"
		loc.TLS = &on
	}
	return loc, nil
}

func onOff(b string) string {
	if b == "true" {
		return "on"
	}
	return "off"
}

// Open opens the repository in its key layout (layout.go); it makes no
// request: the layout is found by the first request. For s3, opts gives
// credentials, timeouts, retries and metrics; its Endpoint, Region and
// DisableTLS are replaced by the location's (the flags ParseLocation
// merged).
func (l Location) Open(opts S3Options) (Repository, error) {
	switch l.Scheme {
	case "file":
		repo, err := NewLocalRepository(l.Path)
		if err != nil {
			return nil, err
		}
		return withLayout(repo), nil
	case "s3":
		opts.Endpoint, opts.Region, opts.DisableTLS = l.Endpoint, l.Region, false
		if l.TLS != nil {
			opts.DisableTLS = !*l.TLS
			if *l.TLS {
				// Said in the URL or the flags: the environment's
				// RECOVERD_S3_INSECURE does not turn it off.
				opts.Getenv = withoutEnv(opts.getenv(), "RECOVERD_S3_INSECURE")
			}
		}
		repo, err := NewS3Repository(l.Bucket, l.Prefix, opts)
		if err != nil {
			return nil, err
		}
		return withLayout(repo), nil
	}
	return nil, fmt.Errorf("snapshot: repository location with scheme %q", l.Scheme)
}
