package snapshot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
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
	// repository (the repository itself makes one attempt per call).
	Retry RetryPolicy
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

// S3Repository stores objects in a bucket under a key prefix, through
// minio-go. Each call is one request (minio-go's own retries are off)
// bounded by RequestTimeout, with an idle deadline on body reads.
type S3Repository struct {
	client   *minio.Client
	tr       *http.Transport
	bucket   string
	prefix   string // "" or ends with '/'
	endpoint string
	region   string
	tls      bool

	requestTimeout time.Duration
	idleTimeout    time.Duration
	minUploadRate  int64
	retry          RetryPolicy
	trailers       bool
}

var _ Repository = (*S3Repository)(nil)

func newS3FromURL(ctx context.Context, u *url.URL, opts S3Options) (*S3Repository, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("snapshot: s3 repository URL needs a bucket: s3://bucket/prefix")
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint", "region", "tls":
		default:
			return nil, fmt.Errorf("snapshot: s3 repository URL: unknown parameter %q (endpoint, region, tls)", k)
		}
	}
	if opts.Endpoint == "" {
		opts.Endpoint = q.Get("endpoint")
	}
	if opts.Region == "" {
		opts.Region = q.Get("region")
	}
	if t := q.Get("tls"); t != "" && !opts.DisableTLS {
		on, err := strconv.ParseBool(t)
		if err != nil {
			return nil, fmt.Errorf("snapshot: s3 repository URL: tls=%q is not a boolean", t)
		}
		opts.DisableTLS = !on
		if on {
			opts.Getenv = withoutEnv(opts.getenv(), "RECOVERD_S3_INSECURE")
		}
	}
	return NewS3Repository(ctx, u.Host, strings.Trim(u.Path, "/"), opts)
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

// NewS3Repository opens a repository in bucket under prefix (may be
// empty). It makes no request: a missing bucket or refused credentials
// show on the first call, as ErrUnavailable / ErrAccessDenied.
func NewS3Repository(_ context.Context, bucket, prefix string, opts S3Options) (*S3Repository, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if bucket == "" {
		return nil, errors.New("snapshot: S3 repository needs a bucket")
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		if err := ValidateKey(prefix); err != nil {
			return nil, fmt.Errorf("snapshot: S3 key prefix: %w", err)
		}
		prefix += "/"
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("snapshot: S3 CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("snapshot: S3 CA file %s holds no PEM certificate", o.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	tr := &http.Transport{
		// Never through a proxy from the environment: the repository is
		// addressed directly.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: o.RequestTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		TLSClientConfig:       tlsConf,
		WriteBufferSize:       128 << 10,
		ReadBufferSize:        128 << 10,
	}
	var creds *credentials.Credentials
	if o.AccessKey != "" || o.SecretKey != "" {
		creds = credentials.NewStaticV4(o.AccessKey, o.SecretKey, o.SessionToken)
	} else {
		creds = credentials.New(&credentials.Static{Value: credentials.Value{SignerType: credentials.SignatureAnonymous}})
	}
	client, err := minio.New(o.Endpoint, &minio.Options{
		Creds:  creds,
		Secure: !o.DisableTLS,
		Region: o.Region,
		// Every request, retries and multipart parts included, is counted
		// where it is sent.
		Transport:  &countingTransport{next: tr, metrics: o.Metrics},
		MaxRetries: 1, // one attempt: retries are ours, with one budget
		// Uploads carry a CRC32C trailer the server verifies: integrity of
		// the body at the cost of a CRC instead of a SHA-256.
		TrailingHeaders: !o.NoTrailingChecksums,
	})
	if err != nil {
		// minio-go's errors name the endpoint, never the credentials.
		return nil, fmt.Errorf("snapshot: S3 client for %s: %w", o.Endpoint, err)
	}
	return &S3Repository{
		client: client, tr: tr, bucket: bucket, prefix: prefix,
		endpoint: o.Endpoint, region: o.Region, tls: !o.DisableTLS,
		requestTimeout: o.RequestTimeout, idleTimeout: o.ReadIdleTimeout, minUploadRate: o.MinUploadRate,
		retry: o.Retry, trailers: !o.NoTrailingChecksums,
	}, nil
}

func (r *S3Repository) String() string {
	t := "on"
	if !r.tls {
		t = "off"
	}
	return fmt.Sprintf("s3://%s/%s (endpoint %s, region %s, tls %s)", r.bucket, strings.TrimSuffix(r.prefix, "/"), r.endpoint, r.region, t)
}

// GoString is String: %#v must not print the client's credentials.
func (r *S3Repository) GoString() string { return r.String() }

// Bucket is the repository's bucket.
func (r *S3Repository) Bucket() string { return r.bucket }

// RetryPolicy is the policy given in S3Options.Retry.
func (r *S3Repository) RetryPolicy() RetryPolicy { return r.retry }

// Close closes idle connections.
func (r *S3Repository) Close() error {
	r.tr.CloseIdleConnections()
	return nil
}

// Put uploads the object (multipart when large, as minio-go decides).
func (r *S3Repository) Put(ctx context.Context, key string, src io.Reader, size int64) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("snapshot: put %s: negative size %d", key, size)
	}
	d := r.requestTimeout + time.Duration(float64(size)/float64(r.minUploadRate)*float64(time.Second))
	rctx, cancel := request(ctx, d)
	defer cancel()
	sr := &sourceReader{r: &exactReader{r: src, remaining: size}}
	_, err := r.client.PutObject(rctx, r.bucket, r.prefix+key, sr, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		// With trailers the body's integrity is checked by its CRC32C.
		DisableContentSha256: r.trailers,
	})
	if err == nil {
		return nil
	}
	if serr := sr.failed(); serr != nil && ctx.Err() == nil {
		return fmt.Errorf("snapshot: put %s: reading the source: %w", key, serr)
	}
	return r.classify(ctx, "put", key, r.timeoutErr(rctx, err))
}

// errTooLong is returned by an exactReader whose source has more bytes
// than announced.
var errTooLong = errors.New("reader has more bytes than the size given")

// exactReader yields exactly remaining bytes of r and fails, instead of
// delivering the last bytes, when r has more or fewer, so an upload of the
// wrong length fails instead of storing a truncated object.
type exactReader struct {
	r         io.Reader
	remaining int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.remaining {
		p = p[:e.remaining]
	}
	n, err := e.r.Read(p)
	e.remaining -= int64(n)
	if e.remaining == 0 {
		// Fail with the last bytes withheld: a consumer that stops reading
		// once it has size bytes (io.ReadFull into a part buffer) would
		// never see an error returned after them.
		var one [1]byte
		for {
			m, perr := e.r.Read(one[:])
			if m > 0 {
				return 0, errTooLong
			}
			if perr != nil {
				if perr != io.EOF {
					return 0, perr
				}
				return n, nil
			}
		}
	}
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// s3Body is a GET's response body with an idle deadline: a Read that gets
// no byte within idle cancels the request, so a hung server cannot block a
// reader forever. Time between Reads (a throttled consumer) does not count.
type s3Body struct {
	r         *S3Repository
	ctx       context.Context // the caller's
	key       string
	body      io.ReadCloser
	cancel    context.CancelFunc
	timer     *time.Timer
	idle      time.Duration
	timedOut  *atomic.Bool
	remaining int64
}

func (b *s3Body) Read(p []byte) (int, error) {
	if b.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	b.timer.Reset(b.idle)
	n, err := b.body.Read(p)
	b.timer.Stop()
	b.remaining -= int64(n)
	if err == io.EOF && b.remaining > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		if b.timedOut.Load() {
			err = fmt.Errorf("no data for %v: %w", b.idle, err)
		}
		return n, b.r.classify(b.ctx, "read", b.key, err)
	}
	if b.remaining == 0 {
		err = io.EOF
	}
	return n, err
}

func (b *s3Body) Close() error {
	b.timer.Stop()
	b.cancel()
	return b.body.Close()
}

func (r *S3Repository) get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	var opts minio.GetObjectOptions
	if length >= 0 {
		if off < 0 || length == 0 {
			return nil, fmt.Errorf("snapshot: get %s: invalid range off=%d length=%d", key, off, length)
		}
		if err := opts.SetRange(off, off+length-1); err != nil {
			return nil, err
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	timedOut := new(atomic.Bool)
	timer := time.AfterFunc(r.requestTimeout, func() {
		timedOut.Store(true)
		cancel()
	})
	body, info, _, err := minio.Core{Client: r.client}.GetObject(rctx, r.bucket, r.prefix+key, opts)
	timer.Stop()
	if err != nil {
		cancel()
		if timedOut.Load() {
			err = fmt.Errorf("%w: %w", timeout(r.requestTimeout), err)
		}
		if length >= 0 {
			var er minio.ErrorResponse
			if errors.As(err, &er) && er.Code == "InvalidRange" {
				return nil, fmt.Errorf("snapshot: get %s: range %d+%d past the object's end", key, off, length)
			}
		}
		return nil, r.classify(ctx, "get", key, err)
	}
	want := info.Size
	if length >= 0 && info.Size != length {
		body.Close()
		cancel()
		return nil, fmt.Errorf("snapshot: get %s: range %d+%d past the object's end (%d bytes answered)", key, off, length, info.Size)
	}
	return &s3Body{r: r, ctx: ctx, key: key, body: body, cancel: cancel, timer: timer, idle: r.idleTimeout, timedOut: timedOut, remaining: want}, nil
}

// Get opens the whole object.
func (r *S3Repository) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return r.get(ctx, key, 0, -1)
}

// GetRange opens length bytes at off with an HTTP range request.
func (r *S3Repository) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if length < 0 {
		return nil, fmt.Errorf("snapshot: get %s: negative length %d", key, length)
	}
	return r.get(ctx, key, off, length)
}

// Stat is a HEAD request.
func (r *S3Repository) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	rctx, cancel := request(ctx, r.requestTimeout)
	defer cancel()
	info, err := r.client.StatObject(rctx, r.bucket, r.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, r.classify(ctx, "stat", key, r.timeoutErr(rctx, err))
	}
	return ObjectInfo{Key: key, Size: info.Size, ModTime: info.LastModified}, nil
}

// List pages through ListObjectsV2; each page must come within
// RequestTimeout.
func (r *S3Repository) List(ctx context.Context, prefix string) ([]string, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timedOut := new(atomic.Bool)
	timer := time.AfterFunc(r.requestTimeout, func() {
		timedOut.Store(true)
		cancel()
	})
	defer timer.Stop()
	ch := r.client.ListObjects(rctx, r.bucket, minio.ListObjectsOptions{Prefix: r.prefix + prefix, Recursive: true})
	defer func() {
		cancel()
		for range ch { // let the lister goroutine finish
		}
	}()
	var keys []string
	for obj := range ch {
		timer.Reset(r.requestTimeout)
		if obj.Err != nil {
			err := obj.Err
			if timedOut.Load() {
				err = fmt.Errorf("%w: %w", timeout(r.requestTimeout), err)
			}
			return nil, r.classify(ctx, "list", prefix, err)
		}
		key := strings.TrimPrefix(obj.Key, r.prefix)
		if ValidateKey(key) == nil {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	if timedOut.Load() || ctx.Err() != nil {
		// The channel closed because the context ended: the list is not
		// complete, so it must not be returned as if it were.
		return nil, r.classify(ctx, "list", prefix, timeout(r.requestTimeout))
	}
	return keys, nil
}

// Delete removes the object.
func (r *S3Repository) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	rctx, cancel := request(ctx, r.requestTimeout)
	defer cancel()
	if err := r.client.RemoveObject(rctx, r.bucket, r.prefix+key, minio.RemoveObjectOptions{}); err != nil {
		return r.classify(ctx, "delete", key, r.timeoutErr(rctx, err))
	}
	return nil
}
