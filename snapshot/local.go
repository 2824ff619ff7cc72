package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/recoverd/recoverd/internal/fsutil"
)

// LocalRepository keeps objects as files under a root directory: key
// "a/b/c" is the file <root>/a/b/c. Writes are durable: a temp file in the
// same directory, fsync, rename, fsync of the directory (the
// internal/fsutil pattern, streamed so large blobs are never held in
// memory). Deletes fsync the directory too, so "manifest deleted before its
// blobs" holds across a crash.
type LocalRepository struct {
	root string
}

var _ Repository = (*LocalRepository)(nil)

// NewLocalRepository opens (creating it if missing) a repository in dir,
// which must be an absolute path.
func NewLocalRepository(dir string) (*LocalRepository, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("snapshot: local repository path %q is not absolute", dir)
	}
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, unavailablePermanent("create", "file://"+dir, "", err)
	}
	return &LocalRepository{root: dir}, nil
}

// Root is the repository directory.
func (r *LocalRepository) Root() string { return r.root }

func (r *LocalRepository) String() string { return "file://" + r.root }

// Close does nothing.
func (r *LocalRepository) Close() error { return nil }

func (r *LocalRepository) path(key string) string {
	return filepath.Join(r.root, filepath.FromSlash(key))
}

// classify maps a file-system error to the package's error kinds.
func (r *LocalRepository) classify(op, key string, err error) error {
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		if _, serr := os.Stat(r.root); serr != nil {
			return unavailablePermanent(op, r.String(), key, fmt.Errorf("repository directory: %w", serr))
		}
		return notFound(op, r.String(), key, err)
	case errors.Is(err, fs.ErrPermission):
		return accessDenied(op, r.String(), key, err)
	case errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR):
		return unavailable(op, r.String(), key, err)
	default:
		return unavailablePermanent(op, r.String(), key, err)
	}
}

// ctxReader fails reads once ctx is done, so a long copy from or to a local
// file obeys cancellation.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Put writes the object through a temp file and renames it into place.
func (r *LocalRepository) Put(ctx context.Context, key string, src io.Reader, size int64) (err error) {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("snapshot: put %s: negative size %d", key, size)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dst := r.path(key)
	dir := filepath.Dir(dst)
	if err := r.mkdirAll(dir); err != nil {
		return r.classify("put", key, err)
	}
	f, err := os.CreateTemp(dir, fsutil.TempPrefix+filepath.Base(dst)+"-*")
	if err != nil {
		return r.classify("put", key, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	sr := &sourceReader{r: &ctxReader{ctx: ctx, r: src}}
	n, err := io.Copy(f, io.LimitReader(sr, size+1))
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if serr := sr.failed(); serr != nil {
			return fmt.Errorf("snapshot: put %s: reading the source: %w", key, serr)
		}
		return r.classify("put", key, err)
	}
	if n != size {
		return fmt.Errorf("snapshot: put %s: reader gave %d bytes, %d expected", key, min(n, size+1), size)
	}
	if err = f.Sync(); err != nil {
		return r.classify("put", key, err)
	}
	if err = f.Close(); err != nil {
		return r.classify("put", key, err)
	}
	if err = os.Rename(tmp, dst); err != nil {
		return r.classify("put", key, err)
	}
	if err = fsutil.SyncDir(dir); err != nil {
		return r.classify("put", key, err)
	}
	return nil
}

// mkdirAll creates dir and its missing parents, fsyncing each parent so the
// new directories survive a crash.
func (r *LocalRepository) mkdirAll(dir string) error {
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return nil
	}
	if _, err := os.Stat(r.root); err != nil {
		return err // the root itself is gone: unavailable, not recreated
	}
	parent := filepath.Dir(dir)
	if parent != dir && strings.HasPrefix(parent, r.root) {
		if err := r.mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return fsutil.SyncDir(parent)
}

type fileBody struct {
	ctxReader
	f *os.File
}

func (b *fileBody) Close() error { return b.f.Close() }

// Get opens the object's file.
func (r *LocalRepository) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(r.path(key))
	if err != nil {
		return nil, r.classify("get", key, err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, notFound("get", r.String(), key, errors.New("not a regular file"))
	}
	return &fileBody{ctxReader: ctxReader{ctx: ctx, r: f}, f: f}, nil
}

// GetRange opens length bytes of the object's file at off.
func (r *LocalRepository) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if off < 0 || length <= 0 {
		return nil, fmt.Errorf("snapshot: get %s: invalid range off=%d length=%d", key, off, length)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(r.path(key))
	if err != nil {
		return nil, r.classify("get", key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, r.classify("get", key, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, notFound("get", r.String(), key, errors.New("not a regular file"))
	}
	if off+length > st.Size() {
		f.Close()
		return nil, fmt.Errorf("snapshot: get %s: range %d+%d past the object's %d bytes", key, off, length, st.Size())
	}
	return &fileBody{ctxReader: ctxReader{ctx: ctx, r: io.NewSectionReader(f, off, length)}, f: f}, nil
}

// Stat returns the file's size and modification time.
func (r *LocalRepository) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	st, err := os.Stat(r.path(key))
	if err != nil {
		return ObjectInfo{}, r.classify("stat", key, err)
	}
	if !st.Mode().IsRegular() {
		return ObjectInfo{}, notFound("stat", r.String(), key, errors.New("not a regular file"))
	}
	return ObjectInfo{Key: key, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// List walks the directory of the prefix; temp files are not listed.
func (r *LocalRepository) List(ctx context.Context, prefix string) ([]string, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	if _, err := os.Stat(r.root); err != nil {
		return nil, unavailablePermanent("list", r.String(), prefix, fmt.Errorf("repository directory: %w", err))
	}
	// Walk from the deepest directory the prefix names in full.
	start := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	var keys []string
	err := filepath.WalkDir(r.path(start), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == r.path(start) && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() || fsutil.IsTemp(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(r.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, prefix) && ValidateKey(key) == nil {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, r.classify("list", prefix, err)
	}
	slices.Sort(keys)
	return keys, nil
}

// Delete removes the object's file and fsyncs its directory.
func (r *LocalRepository) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := r.path(key)
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(r.root); serr != nil {
				return unavailablePermanent("delete", r.String(), key, fmt.Errorf("repository directory: %w", serr))
			}
			return nil
		}
		return r.classify("delete", key, err)
	}
	if err := fsutil.SyncDir(filepath.Dir(p)); err != nil {
		return r.classify("delete", key, err)
	}
	return nil
}

// RemoveTemps deletes temp files older than olderThan left by interrupted
// Puts (a crash between create and rename) and returns their keys.
func (r *LocalRepository) RemoveTemps(olderThan time.Duration, now time.Time) ([]string, error) {
	var removed []string
	err := filepath.WalkDir(r.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || !fsutil.IsTemp(d.Name()) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if now.Sub(info.ModTime()) < olderThan {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		rel, _ := filepath.Rel(r.root, p)
		removed = append(removed, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return removed, r.classify("remove temps", "", err)
	}
	return removed, nil
}

// anyKey reports whether the repository holds any object, stopping at the
// first (layoutRepo asks it of a repository without a layout marker).
func (r *LocalRepository) anyKey(ctx context.Context) (bool, error) {
	found := false
	err := filepath.WalkDir(r.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Type().IsRegular() && !fsutil.IsTemp(d.Name()) {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return false, r.classify("list", "", err)
	}
	return found, nil
}
