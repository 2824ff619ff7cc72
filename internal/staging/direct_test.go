package staging

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"github.com/recoverd/recoverd/engine"
)

// alignedCopy returns b in a buffer that starts on a directAlign boundary,
// as the data connection's receive buffers do.
func alignedCopy(b []byte) []byte {
	raw := make([]byte, len(b)+directAlign)
	shift := (directAlign - int(uintptr(unsafe.Pointer(&raw[0]))%directAlign)) % directAlign
	out := raw[shift : shift+len(b)]
	copy(out, b)
	return out
}

// misalignedCopy returns b in a buffer one byte off any boundary.
func misalignedCopy(b []byte) []byte {
	return alignedCopy(append([]byte{0}, b...))[1:]
}

// writeChunks stages f's data in chunks of chunk bytes, each from a buffer
// aligned or not, marks it good and verifies it.
func writeChunks(t *testing.T, a *Area, f engine.FileMeta, data []byte, chunk int, aligned bool) {
	t.Helper()
	sf, err := a.CreateFile(f)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	for off := 0; off < len(data); off += chunk {
		p := data[off:min(off+chunk, len(data))]
		if aligned {
			p = alignedCopy(p)
		} else {
			p = misalignedCopy(p)
		}
		if _, err := sf.WriteAtDirect(p, int64(off)); err != nil {
			t.Fatal(err)
		}
		sf.MarkGood(int64(off + len(p)))
	}
	if err := sf.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestDirectWrites: a large file's aligned writes go past the page cache
// and its tail through it; misaligned buffers, small files and a file
// system that refuses O_DIRECT go through the page cache. Every file holds
// its bytes.
func TestDirectWrites(t *testing.T) {
	big, bigData := file("seg_big", 6<<20+12345, 1) // an unaligned tail
	small, smallData := file("seg_small", 1<<20, 2)
	refuse := func(point, path string) error {
		if point == "staging.open-direct" {
			return &os.PathError{Op: "open", Path: path, Err: syscall.EINVAL}
		}
		return nil
	}
	for _, tc := range []struct {
		name       string
		f          engine.FileMeta
		data       []byte
		aligned    bool
		fault      func(point, path string) error
		wantDirect int64
	}{
		{"large, aligned", big, bigData, true, nil, 6 << 20},
		{"large, misaligned buffers", big, bigData, false, nil, 0},
		{"small file", small, smallData, true, nil, 0},
		{"O_DIRECT refused", big, bigData, true, refuse, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Open("rec", t.TempDir(), Options{Fault: tc.fault})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			before := DirectBytes.Load()
			writeChunks(t, a, tc.f, tc.data, 1<<20, tc.aligned)
			if got := DirectBytes.Load() - before; got != tc.wantDirect {
				t.Fatalf("%d bytes written direct, want %d", got, tc.wantDirect)
			}
			if got, err := os.ReadFile(filepath.Join(a.dir, tc.f.Name)); err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("file holds other bytes (%v)", err)
			}
		})
	}
}

// TestDirectWriteAfterAResume: a transfer that wrote through the page
// cache (WriteAt; bytes past its verified prefix among them) and resumes
// with direct writes after truncating to that prefix, as FetchFiles does,
// leaves the file's bytes right.
func TestDirectWriteAfterAResume(t *testing.T) {
	a := open(t, t.TempDir())
	defer a.Close()
	big, data := file("seg_big", 6<<20+12345, 1)
	wrong := bytes.Clone(data)
	wrong[1<<20+7] ^= 0xff // never verified: cut off at the resume
	sf, err := a.CreateFile(big)
	if err != nil {
		t.Fatal(err)
	}
	before := DirectBytes.Load()
	if _, err := sf.WriteAt(alignedCopy(wrong[:2<<20]), 0); err != nil { // WriteAt: through the page cache
		t.Fatal(err)
	}
	sf.MarkGood(1 << 20)
	sf.Close()
	if DirectBytes.Load() != before {
		t.Fatal("WriteAt went direct")
	}
	sf, err = a.CreateFile(big)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	good := sf.Good()
	if err := sf.Truncate(good); err != nil || good != 1<<20 {
		t.Fatalf("resume at %d: %v", good, err)
	}
	for off := good; off < big.Length; off += 1 << 20 {
		p := alignedCopy(data[off:min(off+1<<20, big.Length)])
		if _, err := sf.WriteAtDirect(p, off); err != nil {
			t.Fatal(err)
		}
		sf.MarkGood(off + int64(len(p)))
	}
	if DirectBytes.Load()-before != 5<<20 {
		t.Fatalf("%d bytes went direct, want the 5 whole MiB after the resume", DirectBytes.Load()-before)
	}
	if err := sf.Verify(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(a.dir, big.Name)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the resumed file does not read back (%v)", err)
	}
}
