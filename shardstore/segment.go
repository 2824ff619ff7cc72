package shardstore

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"sort"
	"syscall"

	"github.com/google/uuid"
	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/fsutil"
)

// Segment file layout (all integers little-endian or varints):
//
//	records   sorted by key: uvarint keyLen, key, varint seqno, uvarint term,
//	          kind byte, uvarint valueLen, value
//	index     every indexEvery-th record: uvarint keyLen, key, uvarint offset
//	footer    u64 records, u64 indexOffset, u64 indexEntries,
//	          [16]byte writer UUID, u32 magic, u32 CRC32C of everything before it
//
// The trailing CRC32C is the file's checksum (FileMeta.CRC32C), so a segment
// can be verified alone.

const (
	segMagic      = 0x31474553 // "SEG1"
	footerLen     = 8 + 8 + 8 + 16 + 4 + 4
	indexEvery    = 64
	segNamePrefix = "seg_"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks data that fails its checksum or cannot be decoded: a
// shard proven damaged. A file that cannot be read is not corrupt (see
// readFailure and ErrUnavailable).
var ErrCorrupt = engine.ErrCorrupt

// readFailure wraps an error met while decoding a file. The reader's own
// errors (a *fs.PathError or an errno: EIO, EMFILE, EACCES, EISDIR) say
// nothing about the bytes and are wrapped as they are; anything else (the
// input ends early, a varint overflows, a field is out of range) is
// ErrCorrupt.
func readFailure(err error, format string, args ...any) error {
	var pe *fs.PathError
	var errno syscall.Errno
	if errors.As(err, &pe) || errors.As(err, &errno) {
		return fmt.Errorf("shardstore: "+format+": %w", append(args, err)...)
	}
	if errors.Is(err, ErrCorrupt) {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	return fmt.Errorf("%w: "+format+": %v", append(append([]any{ErrCorrupt}, args...), err)...)
}

// segmentWriter writes one segment file from entries given in key order.
type segmentWriter struct {
	f       *os.File
	w       *bufio.Writer
	crc     hash.Hash32
	off     uint64
	records uint64
	index   []byte
	nIndex  uint64
	lastKey string
	buf     []byte
	writer  uuid.UUID
}

func createSegment(path string) (*segmentWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("shardstore: create segment: %w", err)
	}
	sw := &segmentWriter{f: f, crc: crc32.New(castagnoli), writer: uuid.New()}
	sw.w = bufio.NewWriterSize(io.MultiWriter(f, sw.crc), 256<<10)
	return sw, nil
}

func (sw *segmentWriter) add(e *Op) error {
	if e.Kind == OpNoOp {
		return fmt.Errorf("shardstore: no-op %v cannot be stored in a segment", e.SeqNo)
	}
	if sw.records > 0 && e.Key <= sw.lastKey {
		return fmt.Errorf("shardstore: segment keys out of order: %q after %q", e.Key, sw.lastKey)
	}
	if sw.records%indexEvery == 0 {
		sw.index = binary.AppendUvarint(sw.index, uint64(len(e.Key)))
		sw.index = append(sw.index, e.Key...)
		sw.index = binary.AppendUvarint(sw.index, sw.off)
		sw.nIndex++
	}
	sw.buf = appendEntry(sw.buf[:0], e)
	if _, err := sw.w.Write(sw.buf); err != nil {
		return fmt.Errorf("shardstore: write segment: %w", err)
	}
	sw.off += uint64(len(sw.buf))
	sw.records++
	sw.lastKey = e.Key
	return nil
}

func (sw *segmentWriter) size() uint64 { return sw.off }

// finish writes the index and footer, fsyncs and closes the file, and
// returns its metadata.
func (sw *segmentWriter) finish() (FileMeta, error) {
	defer sw.f.Close()
	indexOff := sw.off
	if _, err := sw.w.Write(sw.index); err != nil {
		return FileMeta{}, fmt.Errorf("shardstore: write segment index: %w", err)
	}
	var foot [footerLen - 4]byte
	binary.LittleEndian.PutUint64(foot[0:], sw.records)
	binary.LittleEndian.PutUint64(foot[8:], indexOff)
	binary.LittleEndian.PutUint64(foot[16:], sw.nIndex)
	copy(foot[24:40], sw.writer[:])
	binary.LittleEndian.PutUint32(foot[40:], segMagic)
	if _, err := sw.w.Write(foot[:]); err != nil {
		return FileMeta{}, fmt.Errorf("shardstore: write segment footer: %w", err)
	}
	if err := sw.w.Flush(); err != nil {
		return FileMeta{}, fmt.Errorf("shardstore: write segment: %w", err)
	}
	sum := sw.crc.Sum32()
	if err := binary.Write(sw.f, binary.LittleEndian, sum); err != nil {
		return FileMeta{}, fmt.Errorf("shardstore: write segment checksum: %w", err)
	}
	if err := sw.f.Sync(); err != nil {
		return FileMeta{}, fmt.Errorf("shardstore: fsync segment: %w", err)
	}
	length := int64(indexOff) + int64(len(sw.index)) + footerLen
	name := sw.f.Name()
	return FileMeta{Name: baseName(name), Length: length, CRC32C: sum, WriterUUID: hex.EncodeToString(sw.writer[:])}, nil
}

func (sw *segmentWriter) abort() {
	sw.f.Close()
	os.Remove(sw.f.Name())
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}

// segment is an immutable segment file of the current commit. It holds no
// open file descriptor, so a shard may have more segments than the process
// may open files.
type segment struct {
	path     string
	meta     FileMeta
	records  uint64
	indexOff int64
	writer   [16]byte // the footer's writer UUID
	// sparse holds every indexEvery-th key and its offset.
	sparseKeys []string
	sparseOffs []int64
}

type segmentFooter struct {
	records, indexOff, indexEntries uint64
	writer                          [16]byte
	crc                             uint32
}

func parseFooter(b []byte, length int64) (segmentFooter, error) {
	var ft segmentFooter
	if len(b) != footerLen {
		return ft, fmt.Errorf("%w: short footer", ErrCorrupt)
	}
	if binary.LittleEndian.Uint32(b[40:]) != segMagic {
		return ft, fmt.Errorf("%w: bad segment magic", ErrCorrupt)
	}
	ft.records = binary.LittleEndian.Uint64(b[0:])
	ft.indexOff = binary.LittleEndian.Uint64(b[8:])
	ft.indexEntries = binary.LittleEndian.Uint64(b[16:])
	copy(ft.writer[:], b[24:40])
	ft.crc = binary.LittleEndian.Uint32(b[44:])
	if ft.indexOff > uint64(length-footerLen) || ft.indexEntries > ft.records {
		return ft, fmt.Errorf("%w: segment footer out of bounds", ErrCorrupt)
	}
	return ft, nil
}

// openSegment reads a segment's footer and sparse index and checks them
// against the metadata the commit recorded.
func openSegment(path string, meta FileMeta) (*segment, error) {
	f, err := fsutil.Open(path)
	if err != nil {
		return nil, fmt.Errorf("shardstore: open segment %s: %w", meta.Name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() != meta.Length || st.Size() < footerLen {
		return nil, fmt.Errorf("%w: segment %s is %d bytes, commit says %d", ErrCorrupt, meta.Name, st.Size(), meta.Length)
	}
	foot := make([]byte, footerLen)
	if _, err := f.ReadAt(foot, st.Size()-footerLen); err != nil {
		return nil, fmt.Errorf("shardstore: read footer of %s: %w", meta.Name, err)
	}
	ft, err := parseFooter(foot, st.Size())
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", meta.Name, err)
	}
	if ft.crc != meta.CRC32C {
		return nil, fmt.Errorf("%w: segment %s footer checksum %08x, commit says %08x", ErrCorrupt, meta.Name, ft.crc, meta.CRC32C)
	}
	idx := make([]byte, st.Size()-footerLen-int64(ft.indexOff))
	if _, err := f.ReadAt(idx, int64(ft.indexOff)); err != nil {
		return nil, fmt.Errorf("shardstore: read index of %s: %w", meta.Name, err)
	}
	s := &segment{path: path, meta: meta, records: ft.records, indexOff: int64(ft.indexOff), writer: ft.writer}
	for i := uint64(0); i < ft.indexEntries; i++ {
		kl, n := binary.Uvarint(idx)
		if n <= 0 || uint64(len(idx)-n) < kl {
			return nil, fmt.Errorf("%w: segment %s index", ErrCorrupt, meta.Name)
		}
		key := string(idx[n : n+int(kl)])
		idx = idx[n+int(kl):]
		off, n := binary.Uvarint(idx)
		if n <= 0 || off > ft.indexOff {
			return nil, fmt.Errorf("%w: segment %s index", ErrCorrupt, meta.Name)
		}
		idx = idx[n:]
		s.sparseKeys = append(s.sparseKeys, key)
		s.sparseOffs = append(s.sparseOffs, int64(off))
	}
	return s, nil
}

// iterate calls fn for every Op in key order, reading with a buffer of
// bufSize bytes.
func (s *segment) iterate(bufSize int, fn func(e *Op, off int64) error) error {
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("shardstore: open segment %s: %w", s.meta.Name, err)
	}
	defer f.Close()
	it := newSegmentIter(f, s, bufSize)
	for it.next() {
		if err := fn(&it.cur, it.curOff); err != nil {
			return err
		}
	}
	return it.err
}

// segmentIter reads the entries of one open segment file in order.
type segmentIter struct {
	s      *segment
	r      *bufio.Reader
	off    int64
	cur    Op
	curOff int64
	n      uint64
	err    error
}

func newSegmentIter(f *os.File, s *segment, bufSize int) *segmentIter {
	return &segmentIter{s: s, r: bufio.NewReaderSize(io.NewSectionReader(f, 0, s.indexOff), bufSize)}
}

func (it *segmentIter) next() bool {
	if it.err != nil || it.n >= it.s.records {
		return false
	}
	it.curOff = it.off
	if err := readEntry(it.r, &it.cur); err != nil {
		it.err = readFailure(err, "segment %s record %d", it.s.meta.Name, it.n)
		return false
	}
	it.off += int64(entrySize(&it.cur))
	it.n++
	return true
}

// entrySize is the encoded length of e, used to track offsets without a
// counting wrapper on the hot path.
func entrySize(e *Op) int {
	var tmp [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(tmp[:], uint64(len(e.Key))) + len(e.Key)
	n += binary.PutVarint(tmp[:], int64(e.SeqNo))
	n += binary.PutUvarint(tmp[:], e.PrimaryTerm)
	n++
	n += binary.PutUvarint(tmp[:], uint64(len(e.Value))) + len(e.Value)
	return n
}

// get looks key up with the sparse index.
func (s *segment) get(key string) (Op, bool, error) {
	i := sort.SearchStrings(s.sparseKeys, key)
	if i < len(s.sparseKeys) && s.sparseKeys[i] == key {
		// exact hit on an indexed key
	} else if i == 0 {
		return Op{}, false, nil
	} else {
		i--
	}
	f, err := os.Open(s.path)
	if err != nil {
		return Op{}, false, fmt.Errorf("shardstore: open segment %s: %w", s.meta.Name, err)
	}
	defer f.Close()
	end := s.indexOff
	if i+1 < len(s.sparseOffs) {
		end = s.sparseOffs[i+1]
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, s.sparseOffs[i], end-s.sparseOffs[i]), 16<<10)
	var e Op
	for {
		if err := readEntry(r, &e); err != nil {
			if errors.Is(err, io.EOF) {
				return Op{}, false, nil
			}
			return Op{}, false, readFailure(err, "segment %s", s.meta.Name)
		}
		switch {
		case e.Key == key:
			return e, true, nil
		case e.Key > key:
			return Op{}, false, nil
		}
	}
}

// readEntryAt reads the Op at off (an offset reported by iterate).
func readEntryAt(f *os.File, off int64, e *Op) error {
	r := bufio.NewReaderSize(io.NewSectionReader(f, off, 1<<62), 4<<10)
	return readEntry(r, e)
}

// verifyFile recomputes a file's trailing CRC32C and compares it with the
// stored one and with want.
func verifyFile(path string, want FileMeta) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("shardstore: verify %s: %w", want.Name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != want.Length {
		return fmt.Errorf("%w: file %s is %d bytes, expected %d", ErrCorrupt, want.Name, st.Size(), want.Length)
	}
	if st.Size() < 4 {
		return fmt.Errorf("%w: file %s too short for a checksum", ErrCorrupt, want.Name)
	}
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, st.Size()-4)); err != nil {
		return fmt.Errorf("shardstore: verify %s: %w", want.Name, err)
	}
	var stored [4]byte
	if _, err := f.ReadAt(stored[:], st.Size()-4); err != nil {
		return fmt.Errorf("shardstore: verify %s: %w", want.Name, err)
	}
	got := h.Sum32()
	if got != binary.LittleEndian.Uint32(stored[:]) || got != want.CRC32C {
		return fmt.Errorf("%w: file %s checksum %08x, footer %08x, expected %08x", ErrCorrupt, want.Name, got, binary.LittleEndian.Uint32(stored[:]), want.CRC32C)
	}
	return nil
}
