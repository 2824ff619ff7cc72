package snapshot

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/recoverd/recoverd/internal/retry"
)

// S3Options configure an S3 repository. Empty fields are filled from the
// repository URL's query, then from the environment:
//
//	RECOVERD_S3_ENDPOINT   host:port, or http(s)://host:port (default s3.amazonaws.com)
//	RECOVERD_S3_REGION     (then AWS_REGION; default us-east-1)
//	RECOVERD_S3_ACCESS_KEY (then AWS_ACCESS_KEY_ID)
//	RECOVERD_S3_SECRET_KEY (then AWS_SECRET_ACCESS_KEY)
//	RECOVERD_S3_SESSION_TOKEN (then AWS_SESSION_TOKEN)
//	RECOVERD_S3_INSECURE   true: plain HTTP, no TLS
//	RECOVERD_S3_CA_FILE    PEM bundle of CAs to trust for TLS
//
// The secret never appears in String, in errors or in logs.
type S3Options struct {
	Endpoint     string
	Region       string
	AccessKey    string
	SecretKey    string
	SessionToken string
	// DisableTLS talks plain HTTP (only sensible on loopback or a private
	// network).
	DisableTLS bool
	// CAFile is a PEM bundle of CA certificates to trust (added to the
	// system pool).
	CAFile string
	// RequestTimeout bounds a metadata request (stat, list page, delete)
	// and the wait for a GET's response headers. Default 30s.
	RequestTimeout time.Duration
	// ReadIdleTimeout fails a body read that receives no byte for this
	// long (a hung or SIGSTOPped server). Default 30s.
	ReadIdleTimeout time.Duration
	// MinUploadRate sizes a Put's deadline: RequestTimeout plus size /
	// MinUploadRate seconds. Default 1 MiB/s.
	MinUploadRate int64
	// DialTimeout bounds a TCP connect. Default 10s.
	DialTimeout time.Duration
	// NoTrailingChecksums turns off CRC32C trailing checksums on uploads,
	// for S3-compatible stores without aws-chunked trailer support; payloads
	// are then SHA-256 signed instead on plain HTTP (slower).
	NoTrailingChecksums bool
	// Retry is the policy this package's functions apply to calls on this
	// repository (the repository itself makes one attempt per call); zero
	// fields are retry.Repository's.
	Retry retry.Options
	// Metrics, when set, counts every request in
	// recoverd_s3_requests_total (see CountRequests for the kind label).
	Metrics *RequestMetrics
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

// String prints the options without the secret key or session token.
func (o S3Options) String() string {
	return fmt.Sprintf("S3Options{Endpoint:%q Region:%q AccessKey:%q SecretKey:%s DisableTLS:%v CAFile:%q RequestTimeout:%v ReadIdleTimeout:%v}",
		o.Endpoint, o.Region, o.AccessKey, redacted(o.SecretKey), o.DisableTLS, o.CAFile, o.RequestTimeout, o.ReadIdleTimeout)
}

// GoString is String, so %#v does not print the secret either.
func (o S3Options) GoString() string { return o.String() }

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "<redacted>"
}

func (o S3Options) getenv() func(string) string {
	if o.Getenv != nil {
		return o.Getenv
	}
	return os.Getenv
}

func withoutEnv(get func(string) string, name string) func(string) string {
	return func(k string) string {
		if k == name {
			return ""
		}
		return get(k)
	}
}

// resolve fills empty fields from the environment and defaults.
func (o S3Options) resolve() (S3Options, error) {
	env := o.getenv()
	first := func(vals ...string) string {
		for _, v := range vals {
			if v != "" {
				return v
			}
		}
		return ""
	}
	o.Endpoint = first(o.Endpoint, env("RECOVERD_S3_ENDPOINT"), "s3.amazonaws.com")
	o.Region = first(o.Region, env("RECOVERD_S3_REGION"), env("AWS_REGION"), "us-east-1")
	if o.AccessKey == "" && o.SecretKey == "" {
		if env("RECOVERD_S3_ACCESS_KEY") != "" || env("RECOVERD_S3_SECRET_KEY") != "" {
			o.AccessKey, o.SecretKey, o.SessionToken = env("RECOVERD_S3_ACCESS_KEY"), env("RECOVERD_S3_SECRET_KEY"), first(o.SessionToken, env("RECOVERD_S3_SESSION_TOKEN"))
		} else {
			o.AccessKey, o.SecretKey, o.SessionToken = env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), first(o.SessionToken, env("AWS_SESSION_TOKEN"))
		}
	}
	if !o.DisableTLS {
		if v := env("RECOVERD_S3_INSECURE"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return o, fmt.Errorf("snapshot: RECOVERD_S3_INSECURE=%q is not a boolean", v)
			}
			o.DisableTLS = b
		}
	}
	o.CAFile = first(o.CAFile, env("RECOVERD_S3_CA_FILE"))
	if strings.Contains(o.Endpoint, "://") {
		u, err := url.Parse(o.Endpoint)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
			return o, fmt.Errorf("snapshot: S3 endpoint must be host:port or http(s)://host:port")
		}
		switch u.Scheme {
		case "http":
			o.DisableTLS = true
		case "https":
			o.DisableTLS = false
		default:
			return o, fmt.Errorf("snapshot: S3 endpoint scheme %q is not http or https", u.Scheme)
		}
		o.Endpoint = u.Host
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.ReadIdleTimeout <= 0 {
		o.ReadIdleTimeout = 30 * time.Second
	}
	if o.MinUploadRate <= 0 {
		o.MinUploadRate = 1 << 20
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	return o, nil
}
