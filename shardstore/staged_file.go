package shardstore

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// StagedFile is one incoming file being written at offsets.
type StagedFile struct {
	st   *Staging
	f    *os.File
	meta FileMeta
}

// CreateFile opens a staged file for meta, creating it or, when a previous
// attempt of this recovery left part of it, keeping what is there so the
// transfer can resume.
func (st *Staging) CreateFile(meta FileMeta) (*StagedFile, error) {
	if err := ValidateName(meta.Name); err != nil {
		return nil, err
	}
	if meta.Length < 4 {
		return nil, fmt.Errorf("shardstore: staged file %s has length %d, too short for a checksum", meta.Name, meta.Length)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		return nil, fmt.Errorf("%w: staging %s is finished", ErrClosed, st.id)
	}
	old, ok := st.files[meta.Name]
	if ok && old.meta != meta {
		return nil, fmt.Errorf("shardstore: staged file %s already exists with other metadata", meta.Name)
	}
	f, err := os.OpenFile(filepath.Join(st.dir, meta.Name), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("shardstore: create staged file: %w", err)
	}
	state := &stagedState{meta: meta}
	if ok {
		// What an earlier attempt checked, and its running checksum if it
		// stopped in order (a resume continues from there).
		state.good, state.recorded, state.crc, state.crcOff, state.tail = old.good, old.recorded, old.crc, old.crcOff, old.tail
	}
	st.files[meta.Name] = state
	return &StagedFile{st: st, f: f, meta: meta}, nil
}

// Good is the length of the file's prefix that a writer of this process
// marked written and checked (MarkGood), at most the bytes present: a
// transfer of this recovery that was cut short (even by a re-plan) resumes
// after it rather than from the start. It is 0 for a file created anew.
func (sf *StagedFile) Good() int64 {
	sf.st.mu.Lock()
	s, ok := sf.st.files[sf.meta.Name]
	sf.st.mu.Unlock()
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
func (sf *StagedFile) MarkGood(n int64) {
	sf.st.mu.Lock()
	var rec *progressRecord
	if s, ok := sf.st.files[sf.meta.Name]; ok {
		s.good = min(max(n, 0), sf.meta.Length)
		rec = s.progress(false)
	}
	sf.st.mu.Unlock()
	if rec != nil {
		sf.st.writeProgress(sf.meta.Name, rec)
	}
}

// Meta is the metadata the file must match.
func (sf *StagedFile) Meta() FileMeta { return sf.meta }

// WriteAt writes p at off; writes beyond the expected length are refused.
func (sf *StagedFile) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > sf.meta.Length {
		return 0, fmt.Errorf("shardstore: write of %d bytes at %d is outside %s (%d bytes)", len(p), off, sf.meta.Name, sf.meta.Length)
	}
	n, err := sf.f.WriteAt(p, off)
	if err == nil {
		sf.st.mu.Lock()
		if s, ok := sf.st.files[sf.meta.Name]; ok {
			s.track(p, off)
		}
		sf.st.mu.Unlock()
	}
	return n, err
}

// Size is the number of bytes present (a resumed transfer continues from
// its last verified offset, which the caller tracks).
func (sf *StagedFile) Size() (int64, error) {
	st, err := sf.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// Truncate cuts the file to n bytes (discarding unverified bytes on resume);
// the good prefix shrinks with it.
func (sf *StagedFile) Truncate(n int64) error {
	sf.st.mu.Lock()
	if s, ok := sf.st.files[sf.meta.Name]; ok {
		s.good = min(s.good, max(n, 0))
		s.recorded = min(s.recorded, max(n, 0))
		s.verified = s.verified && n >= sf.meta.Length
		if n < s.crcOff { // the running checksum covers bytes now gone
			s.crc, s.crcOff = 0, 0
		}
	}
	sf.st.mu.Unlock()
	return sf.f.Truncate(n)
}

// Verify checks the file's length and CRC32C; a verified file may be
// published. It does not fsync: Publish fsyncs the staged files in
// parallel before moving them into place (one fsync after each file, in
// the copy's path, cost a recovery of many small files more than the copy
// itself).
//
// A file written whole in order is checked against the checksum computed
// as it was written, as Lucene checks a file while it is copied; any other
// (written out of order, resumed after a restart) is read back.
func (sf *StagedFile) Verify() error {
	sf.st.mu.Lock()
	var s stagedState
	if p, ok := sf.st.files[sf.meta.Name]; ok {
		s = *p
	}
	sf.st.mu.Unlock()
	size, err := sf.Size()
	if err != nil {
		return err
	}
	if s.crcOff == sf.meta.Length && size == sf.meta.Length {
		if footer := binary.LittleEndian.Uint32(s.tail[:]); s.crc != sf.meta.CRC32C || footer != sf.meta.CRC32C {
			return fmt.Errorf("%w: file %s checksum %08x, footer %08x, expected %08x", ErrCorrupt, sf.meta.Name, s.crc, footer, sf.meta.CRC32C)
		}
	} else if err := verifyFile(sf.f.Name(), sf.meta); err != nil {
		return err
	}
	sf.st.mu.Lock()
	defer sf.st.mu.Unlock()
	if s, ok := sf.st.files[sf.meta.Name]; ok {
		s.verified = true
	}
	return nil
}

// Close closes the file; it stays staged.
func (sf *StagedFile) Close() error { return sf.f.Close() }
