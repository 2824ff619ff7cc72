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
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/recoverd/recoverd/internal/retry"
)

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
	policy         retry.Options
	trailers       bool
}

var _ Repository = (*S3Repository)(nil)

// NewS3Repository opens a repository in bucket under prefix (may be
// empty). It makes no request: a missing bucket or refused credentials
// show on the first call, as ErrUnavailable / ErrAccessDenied.
func NewS3Repository(bucket, prefix string, opts S3Options) (*S3Repository, error) {
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
		policy: o.Retry, trailers: !o.NoTrailingChecksums,
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
func (r *S3Repository) RetryPolicy() retry.Options { return r.policy }

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
	// The deadline's cause says so to the counting transport (health.go).
	rctx, cancelCause := context.WithCancelCause(ctx)
	cancel := func() { cancelCause(nil) }
	timedOut := new(atomic.Bool)
	timer := time.AfterFunc(r.requestTimeout, func() {
		timedOut.Store(true)
		cancelCause(timeout(r.requestTimeout))
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
	rctx, cancelCause := context.WithCancelCause(ctx)
	cancel := func() { cancelCause(nil) }
	defer cancel()
	timedOut := new(atomic.Bool)
	timer := time.AfterFunc(r.requestTimeout, func() {
		timedOut.Store(true)
		cancelCause(timeout(r.requestTimeout))
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

// anyKey reports whether the repository's prefix holds any object: one
// listing request, whatever the repository's size (layoutRepo asks it of
// a repository without a layout marker).
func (r *S3Repository) anyKey(ctx context.Context) (bool, error) {
	rctx, cancel := request(ctx, r.requestTimeout)
	defer cancel()
	ch := r.client.ListObjects(rctx, r.bucket, minio.ListObjectsOptions{Prefix: r.prefix, Recursive: true, MaxKeys: 1})
	defer func() {
		cancel()
		for range ch { // let the lister goroutine finish
		}
	}()
	for obj := range ch {
		if obj.Err != nil {
			return false, r.classify(ctx, "list", "", r.timeoutErr(rctx, obj.Err))
		}
		if ValidateKey(strings.TrimPrefix(obj.Key, r.prefix)) == nil {
			return true, nil
		}
	}
	if rctx.Err() != nil {
		return false, r.classify(ctx, "list", "", r.timeoutErr(rctx, rctx.Err()))
	}
	return false, nil
}
