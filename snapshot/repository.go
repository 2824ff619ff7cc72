package snapshot

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/recoverd/recoverd/shardstore"
)

// Repository stores objects under '/'-separated keys. It is what the
// snapshot functions need and no more, so a new backend is small. Every
// call is a single attempt bounded in time: retrying transient errors is
// the caller's job (this package's functions and Downloader do it).
//
// Errors wrap ErrNotFound, ErrUnavailable or ErrAccessDenied, and say
// whether retrying may fix them with a Transient() bool method, which
// retry.IsTransient reads (an error without one is permanent here, unless
// it is a network error).
type Repository interface {
	// Put durably stores exactly size bytes read from r under key,
	// replacing any object there; readers see the old or the new object,
	// never a part. r yielding other than size bytes is an error and
	// leaves the key unchanged.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get opens the whole object. Reading the body obeys ctx and an idle
	// deadline; Close releases the request.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange opens length bytes at off; the body yields exactly that many
	// bytes or an error. A range past the object's end is an error.
	GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	// Stat returns the object's size and modification time.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List returns every key starting with prefix, sorted. A prefix with
	// nothing under it gives an empty list and no error; a repository that
	// cannot be listed gives an error, never an empty list.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// String describes the repository for logs and errors, without
	// credentials.
	String() string
	// Close releases idle connections.
	Close() error
}

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// MaxKeyLen bounds a repository key.
const MaxKeyLen = 900

// ValidateKey checks a repository key: 1 to MaxKeyLen bytes of segments
// separated by single '/', each a valid shardstore name (no "..", no ".",
// no leading dot, a fixed character set). So no key can leave the
// repository's root, and none collides with a local temp file.
func ValidateKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("snapshot: invalid key: %d bytes long, 1 to %d allowed", len(key), MaxKeyLen)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if err := shardstore.ValidateName(seg); err != nil {
			return fmt.Errorf("snapshot: invalid key %q: %w", key, err)
		}
	}
	return nil
}

// validatePrefix checks a List prefix: empty, or a key, or a key followed
// by '/'.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := ValidateKey(strings.TrimSuffix(prefix, "/")); err != nil {
		return fmt.Errorf("snapshot: invalid list prefix %q: %w", prefix, err)
	}
	return nil
}

// OpenRepository opens the repository named by a URL:
//
//	file:///abs/path                   a local directory (created if missing)
//	s3://bucket[/prefix][?endpoint=host:port&region=r&tls=false]
//
// For s3, opts.Endpoint, Region and DisableTLS are the flags given beside
// the URL (--s3-endpoint, --s3-region, --s3-insecure): ParseLocation
// merges them with the URL's query and refuses the two when they disagree;
// what neither says comes from the environment (RECOVERD_S3_*, then
// AWS_*; see S3Options). Opening makes no request, so it takes no
// context: the first call on the repository is the first request.
func OpenRepository(rawURL string, opts S3Options) (Repository, error) {
	loc, err := ParseLocation(rawURL, LocationFlags{Endpoint: opts.Endpoint, Region: opts.Region, Insecure: opts.DisableTLS})
	if err != nil {
		return nil, err
	}
	return loc.Open(opts)
}

// sourceReader remembers the error of the reader a Put consumes, so a
// failure of the source (a local read error, a checksum mismatch) is
// reported as such and not as a repository failure.
type sourceReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
	}
	return n, err
}

func (s *sourceReader) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
