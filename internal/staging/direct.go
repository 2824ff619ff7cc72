package staging

import (
	"errors"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/recoverd/recoverd/internal/fsutil"
	"golang.org/x/sys/unix"
)

// Direct writes (File.WriteAtDirect, which peer transfers use). A staged
// file's bytes are written past the page cache (O_DIRECT) where a write
// allows it: the data is copied once, from the receive buffer to the
// disk, rather than into page-cache pages that the fsync then writes and
// that stay cached. Allocating those pages was most
// of a target's CPU in bench case 1 (pwrite at 3 s per GiB on the
// benchmark's VM, whose free memory goes back to the host; 0.2 s with
// O_DIRECT, in a program that writes 2 GiB with four writers), and a
// recovery of a shard bigger than memory no longer evicts the node's hot
// pages. O_DIRECT wants the buffer, the offset and the length aligned to
// the device's logical block size (directAlign covers 512 and 4096): the
// aligned part of a write goes direct, the rest (a file's tail, a write
// from an unaligned buffer: gRPC's messages) through the page cache, as
// all writes did before. The fsync of the file makes both durable.

// directAlign is the alignment O_DIRECT needs here.
const directAlign = 4096

// Only files of minDirectFile bytes or more are written direct, and only
// writes of minDirect or more: a direct write returns once the device has
// the bytes, where a write to the page cache returns at once, so a small
// file pays a device round trip and a descriptor more for little saved
// (bench case 2, 20,000 files of 100 KiB, ran at 0.76x with every file
// direct). Snapshot downloads write through the page cache (WriteAt): with
// their 512 KiB writes direct, case 3 took 8.45 s instead of 4.40, each
// download waiting for the device between two reads of its HTTP body.
const (
	minDirectFile = 4 << 20
	minDirect     = 64 << 10
)

// DirectBytes counts the bytes written with O_DIRECT, process-wide (tests,
// benchmarks).
var DirectBytes atomic.Int64

// directPart is how many bytes of p, written at off, can go direct: a
// multiple of directAlign, 0 when p is too short or misaligned.
func directPart(p []byte, off int64) int {
	if len(p) < minDirect || off%directAlign != 0 || uintptr(unsafe.Pointer(&p[0]))%directAlign != 0 {
		return 0
	}
	return len(p) &^ (directAlign - 1)
}

func (sf *File) openDirect() (*os.File, error) {
	if err := sf.a.opts.Fault("staging.open-direct", sf.f.Name()); err != nil {
		return nil, err
	}
	return fsutil.OpenFile(sf.f.Name(), os.O_WRONLY|unix.O_DIRECT, 0)
}

// writeAtDirect writes p at off, its aligned part with O_DIRECT when the file
// system takes it (sf.direct is opened at the first such write; a file
// system that refuses O_DIRECT gets every write through the page cache).
func (sf *File) writeAtDirect(p []byte, off int64) (int, error) {
	m := 0
	if sf.meta.Length >= minDirectFile {
		m = directPart(p, off)
	}
	if m > 0 && sf.direct == nil && !sf.noDirect {
		d, err := sf.openDirect()
		if errors.Is(err, unix.EINVAL) {
			sf.noDirect = true
		} else if err != nil {
			return 0, err
		} else {
			sf.direct = d
		}
	}
	if m == 0 || sf.direct == nil {
		return sf.f.WriteAt(p, off)
	}
	n, err := sf.direct.WriteAt(p[:m], off)
	if err != nil {
		return n, err
	}
	DirectBytes.Add(int64(m))
	if m == len(p) {
		return n, nil
	}
	k, err := sf.f.WriteAt(p[m:], off+int64(m))
	return n + k, err
}
