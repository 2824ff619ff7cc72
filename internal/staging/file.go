package staging

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/fsutil"
)

type fileState struct {
	meta     engine.FileMeta
	verified bool
	// good is the length of the prefix a writer declared written and
	// checked (MarkGood): a transfer cut short resumes after it. After a
	// restart it is what Keep could check again (resume.go).
	good int64
	// recorded is the prefix the file's progress record names.
	recorded int64
	// crc is the CRC32C of the file's first crcOff bytes (capped at
	// Length-4), as written in order; tail holds the last four bytes once
	// written. When the whole file was written in order, Verify checks
	// them instead of reading the file back.
	crc    uint32
	crcOff int64
	tail   [4]byte
	// sum is the BLAKE3 sum of the same bytes in order (the footer too):
	// the streamed check compares it with the sender's (MatchSum).
	sum *runningSum
	// matched is the sender's sum of the whole file once it equalled sum:
	// a re-plan that finds the file staged still knows it.
	matched   Sum
	isMatched bool
	// writes counts writes and truncations: an fsync of SyncBehind makes
	// the file durable only if none came while it ran.
	writes uint64
	// durable: an fsync of SyncBehind made the verified file durable;
	// syncErr: one failed (Sync returns it).
	durable bool
	syncErr error
}

// track extends the running checksum with p written at off, when it
// continues the bytes already summed.
func (s *fileState) track(p []byte, off int64) {
	if off != s.crcOff || len(p) == 0 {
		return
	}
	body := s.meta.Length - 4
	if off < body {
		n := min(int64(len(p)), body-off)
		s.crc = crc32.Update(s.crc, castagnoli, p[:n])
	}
	if end := off + int64(len(p)); end > body { // the last four bytes: the footer
		from := max(off, body)
		copy(s.tail[from-body:], p[from-off:])
	}
	s.crcOff = off + int64(len(p))
}

// File is one incoming file being written at offsets.
type File struct {
	a    *Area
	f    *os.File
	meta engine.FileMeta
	// direct is f opened with O_DIRECT, at the first write that can use it;
	// noDirect: the file system refused it (direct.go).
	direct   *os.File
	noDirect bool
}

// CreateFile opens a staged file for meta, creating it or, when a previous
// attempt of this recovery left part of it, keeping what is there so the
// transfer can resume.
func (a *Area) CreateFile(meta engine.FileMeta) (*File, error) {
	if err := engine.ValidateName(meta.Name); err != nil {
		return nil, err
	}
	if meta.Length < 4 {
		return nil, fmt.Errorf("staging: file %s has length %d, too short for a checksum", meta.Name, meta.Length)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return nil, fmt.Errorf("%w: %s", ErrFinished, a.id)
	}
	old, ok := a.files[meta.Name]
	if ok && old.meta != meta {
		return nil, fmt.Errorf("staging: file %s already exists with other metadata", meta.Name)
	}
	f, err := fsutil.OpenFile(filepath.Join(a.dir, meta.Name), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("staging: create file: %w", err)
	}
	state := &fileState{meta: meta}
	if ok {
		// What an earlier attempt checked, and its running checksums if it
		// stopped in order (a resume continues from there).
		state.good, state.recorded, state.crc, state.crcOff, state.tail = old.good, old.recorded, old.crc, old.crcOff, old.tail
		state.sum, state.matched, state.isMatched = old.sum, old.matched, old.isMatched
	} else {
		state.sum = newRunningSum(meta.Length)
	}
	a.files[meta.Name] = state
	return &File{a: a, f: f, meta: meta}, nil
}

// Good is the length of the file's prefix that a writer of this process
// marked written and checked (MarkGood), at most the bytes present: a
// transfer of this recovery that was cut short (even by a re-plan) resumes
// after it rather than from the start. It is 0 for a file created anew.
func (sf *File) Good() int64 {
	sf.a.mu.Lock()
	s, ok := sf.a.files[sf.meta.Name]
	sf.a.mu.Unlock()
	if !ok {
		return 0
	}
	size, err := sf.Size()
	if err != nil {
		return 0
	}
	return min(s.good, size)
}

// MarkGood records that the first n bytes of the file are written and
// checked (chunk by chunk, by their sender's checksums).
func (sf *File) MarkGood(n int64) {
	sf.a.mu.Lock()
	var rec *progressRecord
	if s, ok := sf.a.files[sf.meta.Name]; ok {
		s.good = min(max(n, 0), sf.meta.Length)
		rec = s.progress(false)
	}
	sf.a.mu.Unlock()
	if rec != nil {
		sf.a.writeProgress(sf.meta.Name, rec)
	}
}

// Meta is the metadata the file must match.
func (sf *File) Meta() engine.FileMeta { return sf.meta }

// WriteAt writes p at off, through the page cache; writes beyond the
// expected length are refused.
func (sf *File) WriteAt(p []byte, off int64) (int, error) {
	return sf.write(p, off, false)
}

// WriteAtDirect is WriteAt, with the part of p that O_DIRECT takes written
// past the page cache (direct.go) when the file is large.
func (sf *File) WriteAtDirect(p []byte, off int64) (int, error) {
	return sf.write(p, off, true)
}

func (sf *File) write(p []byte, off int64, direct bool) (int, error) {
	if off < 0 || off+int64(len(p)) > sf.meta.Length {
		return 0, fmt.Errorf("staging: write of %d bytes at %d is outside %s (%d bytes)", len(p), off, sf.meta.Name, sf.meta.Length)
	}
	var n int
	var err error
	if direct {
		n, err = sf.writeAtDirect(p, off)
	} else {
		n, err = sf.f.WriteAt(p, off)
	}
	if err == nil {
		sf.a.mu.Lock()
		s, ok := sf.a.files[sf.meta.Name]
		var sum *runningSum
		if ok {
			s.track(p, off)
			s.writes++
			sum = s.sum
		}
		sf.a.mu.Unlock()
		if sum != nil {
			sum.add(p, off)
		}
	}
	return n, err
}

// Size is the number of bytes present (a resumed transfer continues from
// its last verified offset, which the caller tracks).
func (sf *File) Size() (int64, error) {
	st, err := sf.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// Truncate cuts the file to n bytes (discarding unverified bytes on resume);
// the good prefix shrinks with it.
func (sf *File) Truncate(n int64) error {
	sf.a.mu.Lock()
	if s, ok := sf.a.files[sf.meta.Name]; ok {
		s.writes++
		s.durable = false
		s.good = min(s.good, max(n, 0))
		s.recorded = min(s.recorded, max(n, 0))
		s.verified = s.verified && n >= sf.meta.Length
		if n < s.crcOff { // the running checksum covers bytes now gone
			s.crc, s.crcOff = 0, 0
		}
		if !s.sum.covers(n) { // so does the running sum
			s.sum.drop()
			s.sum = newRunningSum(sf.meta.Length)
		}
		if n < sf.meta.Length {
			s.isMatched = false
		}
	}
	sf.a.mu.Unlock()
	return sf.f.Truncate(n)
}

// Verify checks the file's length and CRC32C; the error of one that does
// not match wraps engine.ErrCorrupt. It does not fsync (Area.Sync does,
// for every file at once). A file written whole in order is checked
// against the checksum computed as it was written; any other is read
// back.
func (sf *File) Verify() error {
	sf.a.mu.Lock()
	var s fileState
	if p, ok := sf.a.files[sf.meta.Name]; ok {
		s = *p
	}
	sf.a.mu.Unlock()
	size, err := sf.Size()
	if err != nil {
		return err
	}
	if s.crcOff == sf.meta.Length && size == sf.meta.Length {
		if footer := binary.LittleEndian.Uint32(s.tail[:]); s.crc != sf.meta.CRC32C || footer != sf.meta.CRC32C {
			return fmt.Errorf("%w: file %s checksum %08x, footer %08x, expected %08x", engine.ErrCorrupt, sf.meta.Name, s.crc, footer, sf.meta.CRC32C)
		}
	} else if err := verifyFile(sf.f.Name(), sf.meta); err != nil {
		return err
	}
	sf.a.mu.Lock()
	defer sf.a.mu.Unlock()
	if s, ok := sf.a.files[sf.meta.Name]; ok {
		s.verified = true
	}
	return nil
}

// MatchSum compares the BLAKE3 sum of the file, as it was written in order,
// with the sender's (want): the streamed check of a file that moved. It
// returns false when the file was not written whole in order by this
// process (nothing to compare: the caller falls back to another check),
// and an error wrapping engine.ErrCorrupt when the sums differ. A match is
// remembered (Matched).
func (sf *File) MatchSum(want []byte) (bool, error) {
	sf.a.mu.Lock()
	s, ok := sf.a.files[sf.meta.Name]
	sf.a.mu.Unlock()
	if !ok || len(want) != len(Sum{}) {
		return false, nil
	}
	got, whole := s.sum.final()
	if !whole {
		return false, nil
	}
	if !bytes.Equal(got[:], want) {
		return false, fmt.Errorf("%w: file %s BLAKE3 sum %x as written, %x as the sender read it", engine.ErrCorrupt, sf.meta.Name, got[:8], want[:8])
	}
	sf.a.mu.Lock()
	s.matched, s.isMatched = got, true
	sf.a.mu.Unlock()
	return true, nil
}

// Matched returns the sum MatchSum found equal to the sender's, if it did
// (in this process).
func (sf *File) Matched() (Sum, bool) {
	sf.a.mu.Lock()
	defer sf.a.mu.Unlock()
	if s, ok := sf.a.files[sf.meta.Name]; ok {
		return s.matched, s.isMatched
	}
	return Sum{}, false
}

// Close closes the file; it stays staged.
func (sf *File) Close() error {
	if sf.direct != nil {
		sf.direct.Close()
	}
	return sf.f.Close()
}

// verifyFile reads the file at path back and checks its length and CRC32C
// (of every byte but the last four, which must hold it) against want.
func verifyFile(path string, want engine.FileMeta) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("staging: verify %s: %w", want.Name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != want.Length {
		return fmt.Errorf("%w: file %s is %d bytes, expected %d", engine.ErrCorrupt, want.Name, st.Size(), want.Length)
	}
	if st.Size() < 4 {
		return fmt.Errorf("%w: file %s too short for a checksum", engine.ErrCorrupt, want.Name)
	}
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, st.Size()-4)); err != nil {
		return fmt.Errorf("staging: verify %s: %w", want.Name, err)
	}
	var stored [4]byte
	if _, err := f.ReadAt(stored[:], st.Size()-4); err != nil {
		return fmt.Errorf("staging: verify %s: %w", want.Name, err)
	}
	got := h.Sum32()
	if got != binary.LittleEndian.Uint32(stored[:]) || got != want.CRC32C {
		return fmt.Errorf("%w: file %s checksum %08x, footer %08x, expected %08x", engine.ErrCorrupt, want.Name, got, binary.LittleEndian.Uint32(stored[:]), want.CRC32C)
	}
	return nil
}
