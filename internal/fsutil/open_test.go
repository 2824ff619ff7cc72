package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if _, err := Open(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of a missing file: %v, want ErrNotExist", err)
	} else if pe := (*fs.PathError)(nil); !errors.As(err, &pe) || pe.Path != path || pe.Op != "open" {
		t.Fatalf("Open of a missing file: %#v, want a *fs.PathError naming it", err)
	}
	f, err := OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o640); !errors.Is(err, fs.ErrExist) {
		t.Errorf("O_EXCL on an existing file: %v, want ErrExist", err)
	}
	if _, err := f.WriteAt([]byte("hello"), 3); err != nil {
		t.Fatal(err)
	}
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("descriptor flags %#x (%v): want close-on-exec", flags, err)
	}
	if fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Errorf("status flags %#x (%v): want a blocking descriptor", fl, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ref, err := os.OpenFile(filepath.Join(dir, "ref"), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	ref.Close()
	want, _ := os.Stat(ref.Name())
	st, err := os.Stat(path)
	if err != nil || st.Mode() != want.Mode() || st.Size() != 8 {
		t.Fatalf("stat: %v %v, want mode %v (as os.OpenFile makes it) and 8 bytes", st.Mode(), err, want.Mode())
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b := make([]byte, 5)
	if _, err := r.ReadAt(b, 3); err != nil || string(b) != "hello" {
		t.Errorf("read back %q, %v", b, err)
	}
	if _, err := r.Write([]byte("x")); err == nil {
		t.Error("a file opened for reading took a write")
	}
}
