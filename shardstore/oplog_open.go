package shardstore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/recoverd/recoverd/internal/fsutil"
)

// Opening the op log: every generation is read in order, and the only
// repair is cutting the incomplete write a crash left at the end of the
// newest one.

// openOpLog opens the log in dir, cutting an incomplete write at the tail
// of the newest generation (scanGen says what may be cut) and calling
// replay for every record in order of appearance.
func openOpLog(dir string, opts *Options, replay func(*Op)) (*opLog, error) {
	if err := fsutil.MkdirAllSync(dir, 0o755); err != nil {
		return nil, fmt.Errorf("shardstore: create op log dir: %w", err)
	}
	temps, err := fsutil.RemoveTemps(dir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("shardstore: list op log: %w", err)
	}
	var gens []uint64
	for _, e := range entries {
		name := e.Name()
		g, err := strconv.ParseUint(strings.TrimSuffix(name, oplogSuffix), 10, 64)
		if !strings.HasSuffix(name, oplogSuffix) || err != nil {
			continue
		}
		gens = append(gens, g)
	}
	slices.Sort(gens)
	l := &opLog{dir: dir, failpoint: opts.Failpoint, fault: opts.Fault}
	for i, g := range gens {
		og, repaired, err := scanGen(filepath.Join(dir, genFileName(g)), g, i == len(gens)-1, l.fault, replay)
		if err != nil {
			return nil, err
		}
		if repaired != "" {
			l.repaired = append(l.repaired, repaired)
		}
		l.gens = append(l.gens, og)
	}
	if len(l.gens) > 0 && len(temps) == 0 {
		// Nothing changed in the directory: no fsync, and no descriptor
		// held (the first append opens the newest generation).
		return l, nil
	}
	if len(l.gens) == 0 {
		if err := l.createGen(1); err != nil {
			return nil, err
		}
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return nil, err
	}
	return l, nil
}

// scanGen reads one generation, calling replay for every record. Damage in
// the newest generation that is provably a write a crash cut short (see
// tornTail) is cut off, and the cut is described in repaired. Anything
// else stops the open with an error naming the file and the offset, and
// nothing is changed: a checksum failure with valid records after it is
// corruption (ErrCorrupt), a read error is not (it may pass), and in
// either case cutting would drop acknowledged ops and hand their seqnos
// to other documents. An older generation was fsynced before the next one
// started, so any damage in it is corruption.
func scanGen(path string, gen uint64, newest bool, fault func(point, path string) error, replay func(*Op)) (og *oplogGen, repaired string, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, "", fmt.Errorf("shardstore: open op log %s: %w", path, err)
	}
	defer f.Close()
	og = &oplogGen{gen: gen, path: path}
	r := bufio.NewReaderSize(faultReader{f, fault, path}, 64<<10)
	var off int64
	var (
		op Op
		rr recordReader
	)
	for {
		n, err := rr.read(r, &op)
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			return nil, "", fmt.Errorf("shardstore: op log %s at offset %d: %w (nothing was cut; a read error is not damage)", path, off, err)
		}
		if err != nil {
			if !newest {
				return nil, "", fmt.Errorf("shardstore: op log %s at offset %d: %w (an older generation, fsynced before the next began: nothing was cut)", path, off, err)
			}
			size, why, terr := tornTail(f, off)
			if terr != nil {
				return nil, "", fmt.Errorf("shardstore: op log %s at offset %d: %w; reading what follows: %w (nothing was cut)", path, off, err, terr)
			}
			if why != "" {
				return nil, "", fmt.Errorf("shardstore: op log %s at offset %d: %w; %s, so this is not a write cut short by a crash: nothing was cut", path, off, err, why)
			}
			if err := f.Truncate(off); err != nil {
				return nil, "", fmt.Errorf("shardstore: cut the incomplete tail of op log %s at offset %d: %w", path, off, err)
			}
			if err := f.Sync(); err != nil {
				return nil, "", fmt.Errorf("shardstore: fsync op log %s: %w", path, err)
			}
			repaired = fmt.Sprintf("cut %d bytes of an incomplete write at offset %d of %s (%v)", size-off, off, path, err)
			break
		}
		og.add(op.SeqNo, off)
		replay(&op)
		off += int64(n)
	}
	og.size, og.durable = off, off
	return og, repaired, nil
}

// sectorSize is the unit a disk writes whole or not at all; a torn write
// leaves some sectors of a record zeroed (etcd wal's minSectorSize).
const sectorSize = 512

// tornTail reports whether everything in f from off to its end is what a
// crash in the middle of an append leaves: records that run past the end
// of the file, records with a sector never written (zeroed), and zeros.
// It returns the file size and, when the tail is not torn, why (a valid
// record follows, a record fails its checksum with every sector written,
// a length no record has). I/O errors are returned as such.
func tornTail(f *os.File, off int64) (size int64, why string, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	size = st.Size()
	var hdr [recHeaderLen]byte
	for pos := off; pos < size; {
		if size-pos < recHeaderLen {
			return size, "", nil // a header cut short
		}
		if _, err := f.ReadAt(hdr[:], pos); err != nil {
			return size, "", err
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:]))
		if n == 0 {
			zero, err := allZero(f, pos, size)
			if err != nil || zero {
				return size, "", err // zeros to the end: space never written
			}
			return size, fmt.Sprintf("a zero length at offset %d has data after it", pos), nil
		}
		if n > maxRecordSize {
			return size, fmt.Sprintf("the record at offset %d declares %d bytes, more than any record holds", pos, n), nil
		}
		end := pos + recHeaderLen + n
		if end > size {
			return size, "", nil // runs past the end: an incomplete record
		}
		rec := make([]byte, recHeaderLen+n)
		if _, err := f.ReadAt(rec, pos); err != nil {
			return size, "", err
		}
		payload := rec[recHeaderLen:]
		if crc32.Checksum(payload, castagnoli) == binary.LittleEndian.Uint32(rec[4:]) {
			var op Op
			if err := decodeOp(payload, &op); err != nil {
				return size, fmt.Sprintf("the record at offset %d verifies but does not decode", pos), nil
			}
			if pos == off {
				return size, fmt.Sprintf("the record at offset %d verifies when read again", pos), nil
			}
			return size, fmt.Sprintf("a valid record follows at offset %d", pos), nil
		}
		if !hasZeroSector(rec, pos) {
			return size, fmt.Sprintf("the record at offset %d fails its checksum with every sector written", pos), nil
		}
		pos = end
	}
	return size, "", nil
}

// hasZeroSector reports whether a part of rec (which starts at file offset
// pos) that fills one disk sector, or the part of it that lies in one, is
// all zeros.
func hasZeroSector(rec []byte, pos int64) bool {
	for i := 0; i < len(rec); {
		j := min(len(rec), i+int(sectorSize-(pos+int64(i))%sectorSize))
		if isZero(rec[i:j]) {
			return true
		}
		i = j
	}
	return false
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// allZero reports whether f holds only zero bytes from off to size.
func allZero(f *os.File, off, size int64) (bool, error) {
	buf := make([]byte, 64<<10)
	for off < size {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if !isZero(buf[:n]) {
			return false, nil
		}
		if err != nil && !(err == io.EOF && off+int64(n) >= size) {
			return false, err
		}
		off += int64(n)
	}
	return true, nil
}

// faultReader reads a file, asking Options.Fault before every read.
type faultReader struct {
	f     *os.File
	fault func(point, path string) error
	path  string
}

func (r faultReader) Read(p []byte) (int, error) {
	if err := r.fault("oplog.read", r.path); err != nil {
		return 0, err
	}
	return r.f.Read(p)
}
