package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/recoverd/recoverd/internal/retry"
)

// Key layouts of a repository (SCALE.md, "The snapshot key layout").
// Everything in this package names objects by their logical key,
// "<index>/<shard>/...": manifests record blob keys in that form. A
// layout is how those keys are stored.
const (
	// LayoutFlat stores a logical key as it is. Repositories written
	// before layouts existed (no marker) are flat, and stay so.
	LayoutFlat = 1
	// LayoutHashed stores "<index>/<shard>/rest" under
	// "<hh>/<index>/<shard>/rest", hh the first two hex digits of
	// SHA-256("<index>/<shard>"): the keys of a fleet spread evenly over
	// 256 leading prefixes whatever the index names, so S3's per-prefix
	// request limits partition them. A shard's keys stay under one prefix.
	LayoutHashed = 2
)

// LayoutKey is the marker at the repository's root that records its
// layout: {"layout": 2}.
const LayoutKey = "recoverd-layout.json"

type layoutMarker struct {
	Layout int `json:"layout"`
}

// layoutRepo stores logical keys under the repository's layout. The
// layout is found on the first call that succeeds in finding it: the
// marker says it; without a marker an empty repository is hashed (the
// marker is written before the first object) and one holding objects is
// flat. A repository that cannot be read fails the call (unavailable is
// never taken for empty, which would pick a layout that hides every
// snapshot) and the next call asks again.
type layoutRepo struct {
	Repository
	mu          sync.Mutex
	layout      int  // 0 until found
	markerSaved bool // the marker is in the repository
}

// withLayout wraps repo in its layout. Location.Open does it for every
// repository recoverd and recoverctl open.
func withLayout(repo Repository) Repository { return &layoutRepo{Repository: repo} }

// RetryPolicy passes the wrapped repository's policy on (policyOf).
func (r *layoutRepo) RetryPolicy() retry.Options { return policyOf(r.Repository) }

// Layout returns the repository's layout, finding it if need be. Calls
// that find it at once all ask the repository (the lock is not held over
// a request: a hung store must not hold callers past their own contexts).
func (r *layoutRepo) Layout(ctx context.Context) (int, error) {
	r.mu.Lock()
	layout := r.layout
	r.mu.Unlock()
	if layout != 0 {
		return layout, nil
	}
	layout, saved, err := findLayout(ctx, r.Repository)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.layout == 0 {
		r.layout, r.markerSaved = layout, saved
	}
	return r.layout, nil
}

// findLayout reads the marker, or decides from whether repo holds objects.
func findLayout(ctx context.Context, repo Repository) (layout int, marked bool, err error) {
	body, err := repo.Get(ctx, LayoutKey)
	if err == nil {
		defer body.Close()
		data, err := io.ReadAll(io.LimitReader(body, 1<<10))
		if err != nil {
			return 0, false, fmt.Errorf("snapshot: read the layout marker: %w", err)
		}
		var m layoutMarker
		if err := json.Unmarshal(data, &m); err != nil || (m.Layout != LayoutFlat && m.Layout != LayoutHashed) {
			return 0, false, fmt.Errorf("snapshot: layout marker %s of %s: %q is no layout this build knows (1 or 2): %w",
				LayoutKey, repo, data, ErrCorruptManifest)
		}
		return m.Layout, true, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return 0, false, err
	}
	some, err := hasObjects(ctx, repo)
	switch {
	case err != nil:
		return 0, false, err
	case some:
		return LayoutFlat, false, nil
	}
	return LayoutHashed, false, nil
}

// saveMarker writes the marker of a hashed repository found empty, before
// its first object, so that every reader finds the same layout.
func (r *layoutRepo) saveMarker(ctx context.Context) error {
	r.mu.Lock()
	layout, saved := r.layout, r.markerSaved
	r.mu.Unlock()
	if saved || layout == LayoutFlat {
		return nil
	}
	data, _ := json.Marshal(layoutMarker{Layout: layout})
	if err := r.Repository.Put(ctx, LayoutKey, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("snapshot: write the layout marker: %w", err)
	}
	r.mu.Lock()
	r.markerSaved = true
	r.mu.Unlock()
	return nil
}

// hashPrefix is "<hh>/" for the shard a logical key starts with, or ""
// when the key names no shard (it has no "<index>/<shard>/" start): such a
// key is stored as it is.
func hashPrefix(key string) string {
	index, rest, ok := strings.Cut(key, "/")
	if !ok {
		return ""
	}
	shard, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	sum := sha256.Sum256([]byte(index + "/" + shard))
	return hex.EncodeToString(sum[:1]) + "/"
}

// ObjectKey is where a repository of layout stores the logical key: for
// tools and tests that read a repository's objects directly.
func ObjectKey(layout int, key string) string {
	if layout == LayoutHashed {
		return hashPrefix(key) + key
	}
	return key
}

// logicalKey is the logical key stored at the key k of a hashed
// repository: under its shard's hash prefix, or as it is when it names no
// shard. The marker, and a key under a prefix that is not its shard's, are
// none.
func logicalKey(k string) (string, bool) {
	if hh, rest, ok := strings.Cut(k, "/"); ok && hashPrefix(rest) == hh+"/" {
		return rest, true
	}
	return k, k != LayoutKey && hashPrefix(k) == ""
}

// physical is where a logical key is stored.
func (r *layoutRepo) physical(ctx context.Context, key string) (string, error) {
	layout, err := r.Layout(ctx)
	return ObjectKey(layout, key), err
}

func (r *layoutRepo) Put(ctx context.Context, key string, body io.Reader, size int64) error {
	p, err := r.physical(ctx, key)
	if err != nil {
		return err
	}
	if err := r.saveMarker(ctx); err != nil {
		return err
	}
	return r.Repository.Put(ctx, p, body, size)
}

func (r *layoutRepo) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := r.physical(ctx, key)
	if err != nil {
		return nil, err
	}
	return r.Repository.Get(ctx, p)
}

func (r *layoutRepo) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	p, err := r.physical(ctx, key)
	if err != nil {
		return nil, err
	}
	return r.Repository.GetRange(ctx, p, off, length)
}

func (r *layoutRepo) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	p, err := r.physical(ctx, key)
	if err != nil {
		return ObjectInfo{}, err
	}
	info, err := r.Repository.Stat(ctx, p)
	info.Key = key
	return info, err
}

func (r *layoutRepo) Delete(ctx context.Context, key string) error {
	p, err := r.physical(ctx, key)
	if err != nil {
		return err
	}
	return r.Repository.Delete(ctx, p)
}

// List lists logical keys. A prefix within one shard ("<index>/<shard>/...")
// lists that shard's hash prefix only; a wider one lists the repository
// and keeps the keys under it.
func (r *layoutRepo) List(ctx context.Context, prefix string) ([]string, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	layout, err := r.Layout(ctx)
	if err != nil {
		return nil, err
	}
	if layout == LayoutFlat {
		keys, err := r.Repository.List(ctx, prefix)
		return slices.DeleteFunc(keys, func(k string) bool { return k == LayoutKey }), err
	}
	if hp := hashPrefix(prefix); hp != "" {
		keys, err := r.Repository.List(ctx, hp+prefix)
		for i := range keys {
			keys[i] = keys[i][len(hp):]
		}
		return keys, err
	}
	keys, err := r.Repository.List(ctx, "")
	if err != nil {
		return nil, err
	}
	out := keys[:0]
	for _, k := range keys {
		if logical, ok := logicalKey(k); ok && strings.HasPrefix(logical, prefix) {
			out = append(out, logical)
		}
	}
	slices.Sort(out)
	return out, nil
}

// hasObjects reports whether the repository holds any object.
func hasObjects(ctx context.Context, repo Repository) (bool, error) {
	if f, ok := repo.(interface {
		anyKey(ctx context.Context) (bool, error)
	}); ok {
		return f.anyKey(ctx)
	}
	keys, err := repo.List(ctx, "")
	return len(keys) > 0, err
}

// LayoutOf returns the layout of a repository Location.Open opened, finding
// it if need be; one opened otherwise (NewLocalRepository,
// NewS3Repository) is used as flat.
func LayoutOf(ctx context.Context, repo Repository) (int, error) {
	if r, ok := repo.(*layoutRepo); ok {
		return r.Layout(ctx)
	}
	return LayoutFlat, nil
}
