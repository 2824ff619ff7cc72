package snapshot

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/recoverd/recoverd/internal/retry"
)

// testRepository is the contract every Repository implementation passes
// (the pattern of thanos-io/objstore's AcceptanceTest). newRepo returns an
// empty repository.
func testRepository(t *testing.T, newRepo func(t *testing.T) Repository) {
	ctx := ctxTimeout(t, 2*time.Minute)

	put := func(t *testing.T, r Repository, key string, data []byte) {
		t.Helper()
		if err := r.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	get := func(t *testing.T, r Repository, key string) []byte {
		t.Helper()
		body, err := r.Get(ctx, key)
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		defer body.Close()
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatalf("read %s: %v", key, err)
		}
		return b
	}
	getRange := func(t *testing.T, r Repository, key string, off, n int64) ([]byte, error) {
		t.Helper()
		body, err := r.GetRange(ctx, key, off, n)
		if err != nil {
			return nil, err
		}
		defer body.Close()
		return io.ReadAll(body)
	}

	t.Run("PutGetStat", func(t *testing.T) {
		r := newRepo(t)
		data := []byte("hello, repository")
		before := time.Now().Add(-2 * time.Second)
		put(t, r, "a/b/c", data)
		if got := get(t, r, "a/b/c"); !bytes.Equal(got, data) {
			t.Fatalf("get = %q, want %q", got, data)
		}
		info, err := r.Stat(ctx, "a/b/c")
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != int64(len(data)) || info.Key != "a/b/c" {
			t.Fatalf("stat = %+v", info)
		}
		if info.ModTime.Before(before) || info.ModTime.After(time.Now().Add(2*time.Second)) {
			t.Fatalf("stat modtime %v not around now", info.ModTime)
		}
		if r.String() == "" {
			t.Fatal("empty String()")
		}
	})

	t.Run("EmptyObject", func(t *testing.T) {
		r := newRepo(t)
		put(t, r, "empty", nil)
		if got := get(t, r, "empty"); len(got) != 0 {
			t.Fatalf("got %d bytes", len(got))
		}
		info, err := r.Stat(ctx, "empty")
		if err != nil || info.Size != 0 {
			t.Fatalf("stat = %+v, %v", info, err)
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		r := newRepo(t)
		put(t, r, "k", []byte("first version"))
		put(t, r, "k", []byte("second"))
		if got := get(t, r, "k"); string(got) != "second" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("Ranges", func(t *testing.T) {
		r := newRepo(t)
		data := make([]byte, 1<<20+17)
		rand.Read(data)
		put(t, r, "blob", data)
		for _, c := range []struct{ off, n int64 }{{0, 1}, {0, int64(len(data))}, {1000, 5000}, {int64(len(data)) - 1, 1}, {int64(len(data)) - 300, 300}} {
			got, err := getRange(t, r, "blob", c.off, c.n)
			if err != nil {
				t.Fatalf("range %d+%d: %v", c.off, c.n, err)
			}
			if !bytes.Equal(got, data[c.off:c.off+c.n]) {
				t.Fatalf("range %d+%d: wrong bytes", c.off, c.n)
			}
		}
		for _, c := range []struct{ off, n int64 }{{int64(len(data)), 1}, {int64(len(data)) - 10, 11}, {-1, 5}, {0, 0}} {
			if _, err := getRange(t, r, "blob", c.off, c.n); err == nil {
				t.Fatalf("range %d+%d past the end or invalid: no error", c.off, c.n)
			}
		}
	})

	t.Run("Large", func(t *testing.T) {
		// Larger than minio-go's multipart threshold (16 MiB).
		r := newRepo(t)
		data := make([]byte, 20<<20+3)
		rand.Read(data)
		put(t, r, "big/one", data)
		if got := get(t, r, "big/one"); !bytes.Equal(got, data) {
			t.Fatal("large object differs")
		}
		got, err := getRange(t, r, "big/one", 16<<20-5, 4<<20)
		if err != nil || !bytes.Equal(got, data[16<<20-5:20<<20-5]) {
			t.Fatalf("range across parts: %v", err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		r := newRepo(t)
		put(t, r, "present", []byte("x"))
		_, err := r.Get(ctx, "absent")
		checkNotFound(t, "get", err)
		_, err = r.GetRange(ctx, "absent", 0, 1)
		checkNotFound(t, "get range", err)
		_, err = r.Stat(ctx, "absent")
		checkNotFound(t, "stat", err)
		_, err = r.Get(ctx, "dir/absent")
		checkNotFound(t, "get under a missing directory", err)
	})

	t.Run("WrongLength", func(t *testing.T) {
		r := newRepo(t)
		put(t, r, "k", []byte("original"))
		if err := r.Put(ctx, "k", strings.NewReader("short"), 10); err == nil {
			t.Fatal("put of a short reader: no error")
		}
		if err := r.Put(ctx, "k", strings.NewReader("much too long"), 4); err == nil {
			t.Fatal("put of a long reader: no error")
		}
		if got := get(t, r, "k"); string(got) != "original" {
			t.Fatalf("failed puts changed the object to %q", got)
		}
		if err := r.Put(ctx, "new", strings.NewReader("short"), 10); err == nil {
			t.Fatal("put of a short reader: no error")
		}
		_, err := r.Stat(ctx, "new")
		checkNotFound(t, "stat after a failed put", err)
	})

	t.Run("SourceError", func(t *testing.T) {
		r := newRepo(t)
		boom := errors.New("boom")
		src := io.MultiReader(strings.NewReader("some bytes"), iotest.ErrReader(boom))
		err := r.Put(ctx, "k", src, 100)
		if !errors.Is(err, boom) {
			t.Fatalf("put from a failing reader: %v, want the reader's error", err)
		}
		if errors.Is(err, ErrUnavailable) {
			t.Fatalf("a source failure reported as repository unavailable: %v", err)
		}
		_, err = r.Stat(ctx, "k")
		checkNotFound(t, "stat after a failed put", err)
	})

	t.Run("List", func(t *testing.T) {
		r := newRepo(t)
		keys := []string{"a/b/c", "a/b/d", "a/bc/e", "a/x", "ab/x", "z"}
		for _, k := range keys {
			put(t, r, k, []byte(k))
		}
		for _, c := range []struct {
			prefix string
			want   []string
		}{
			{"", keys},
			{"a/", []string{"a/b/c", "a/b/d", "a/bc/e", "a/x"}},
			{"a/b/", []string{"a/b/c", "a/b/d"}},
			{"a/b", []string{"a/b/c", "a/b/d", "a/bc/e"}},
			{"a", []string{"a/b/c", "a/b/d", "a/bc/e", "a/x", "ab/x"}},
			{"nothing/", nil},
			{"a/b/c", []string{"a/b/c"}},
		} {
			got, err := r.List(ctx, c.prefix)
			if err != nil {
				t.Fatalf("list %q: %v", c.prefix, err)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("list %q = %q, want %q", c.prefix, got, c.want)
			}
		}
	})

	t.Run("Delete", func(t *testing.T) {
		r := newRepo(t)
		put(t, r, "d/1", []byte("1"))
		put(t, r, "d/2", []byte("2"))
		if err := r.Delete(ctx, "d/1"); err != nil {
			t.Fatal(err)
		}
		if err := r.Delete(ctx, "d/1"); err != nil {
			t.Fatalf("delete of a missing key: %v", err)
		}
		if err := r.Delete(ctx, "never/there"); err != nil {
			t.Fatalf("delete of a missing key: %v", err)
		}
		_, err := r.Get(ctx, "d/1")
		checkNotFound(t, "get after delete", err)
		got, err := r.List(ctx, "d/")
		if err != nil || !slices.Equal(got, []string{"d/2"}) {
			t.Fatalf("list after delete = %q, %v", got, err)
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		r := newRepo(t)
		for _, k := range []string{"", "../x", "a/../../x", "/abs", "a//b", "a/./b", ".hidden", "a/.tmp-x", "a/", "a\\b", "a/b c", "a/\x00"} {
			if err := r.Put(ctx, k, strings.NewReader("x"), 1); err == nil {
				t.Errorf("put %q: no error", k)
			}
			if _, err := r.Get(ctx, k); err == nil {
				t.Errorf("get %q: no error", k)
			}
			if _, err := r.Stat(ctx, k); err == nil {
				t.Errorf("stat %q: no error", k)
			}
			if err := r.Delete(ctx, k); err == nil {
				t.Errorf("delete %q: no error", k)
			}
		}
		if _, err := r.List(ctx, "../"); err == nil {
			t.Error("list ../: no error")
		}
		got, err := r.List(ctx, "")
		if err != nil || len(got) != 0 {
			t.Fatalf("invalid keys left objects: %q, %v", got, err)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		r := newRepo(t)
		put(t, r, "k", []byte("data"))
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := r.Put(cctx, "c", strings.NewReader("x"), 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("put with a cancelled context: %v", err)
		}
		if _, err := r.Get(cctx, "k"); !errors.Is(err, context.Canceled) {
			t.Fatalf("get with a cancelled context: %v", err)
		}
		if _, err := r.Stat(cctx, "k"); !errors.Is(err, context.Canceled) {
			t.Fatalf("stat with a cancelled context: %v", err)
		}
		if _, err := r.List(cctx, ""); !errors.Is(err, context.Canceled) {
			t.Fatalf("list with a cancelled context: %v", err)
		}
		_, err := r.Stat(ctx, "c")
		checkNotFound(t, "stat after a cancelled put", err)

		// A body read after its context is cancelled fails.
		data := make([]byte, 8<<20)
		put(t, r, "big", data)
		rctx, rcancel := context.WithCancel(ctx)
		body, err := r.Get(rctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		defer body.Close()
		if _, err := io.ReadFull(body, make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
		rcancel()
		if _, err := io.Copy(io.Discard, body); err == nil {
			t.Fatal("reading on after cancel: no error")
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		r := newRepo(t)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				k := "c/" + string(rune('a'+i))
				data := bytes.Repeat([]byte{byte(i)}, 1000+i)
				if err := r.Put(ctx, k, bytes.NewReader(data), int64(len(data))); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, err := r.List(ctx, "c/")
		if err != nil || len(got) != 16 {
			t.Fatalf("list = %d keys, %v", len(got), err)
		}
	})
}

func checkNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("%s: %v, want ErrNotFound", what, err)
	}
	if errors.Is(err, ErrUnavailable) || retry.IsTransient(err) {
		t.Fatalf("%s: not found also reported as unavailable or transient: %v", what, err)
	}
}

func TestLocalRepository(t *testing.T) {
	testRepository(t, func(t *testing.T) Repository { return newLocalRepo(t) })
}
