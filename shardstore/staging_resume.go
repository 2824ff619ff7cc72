package shardstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/recoverd/recoverd/internal/fsutil"
)

// A recovery interrupted by a restart of its node resumes from what it had
// staged (Options.KeepStaging keeps the directory at open). Nothing staged
// is trusted on its word after a restart: Keep checks it against the
// recovery's new plan. A complete file must read back with its length and
// CRC32C. A partial file keeps the prefix its progress record names only
// if that prefix still reads with the checksum the record holds: the
// record is written, without fsync, as the prefix grows (every
// progressEvery bytes checked) and when the staging is suspended, so a
// process crash loses at most progressEvery bytes per file in flight, and
// a power loss that took written bytes with it shows as a checksum that
// differs, and the file starts over. A prefix is only recorded for a file
// written in order, whose running checksum covers it.

const (
	// progressDir holds one progress record per partial file; like
	// stagedOpsDir its name is never a segment name.
	progressDir = "progress.staged"
	// progressEvery is how many newly checked bytes of a file make its
	// progress record be written again.
	progressEvery = 1 << 20
)

// progressRecord is the content of progress.staged/<name>.
type progressRecord struct {
	Length    int64  `json:"length"`
	CRC32C    uint32 `json:"crc32c"`
	Good      int64  `json:"good"`
	PrefixCRC uint32 `json:"prefix_crc32c"`
}

// progress returns the record to write for s, or nil when there is none
// new (always when force and the prefix can be recorded). Call with the
// staging's lock held.
func (s *stagedState) progress(force bool) *progressRecord {
	if s.verified || s.good <= s.recorded || s.crcOff != s.good || s.good > s.meta.Length-4 {
		return nil
	}
	if !force && s.good-s.recorded < progressEvery {
		return nil
	}
	s.recorded = s.good
	return &progressRecord{Length: s.meta.Length, CRC32C: s.meta.CRC32C, Good: s.good, PrefixCRC: s.crc}
}

func (st *Staging) progressPath(name string) string { return filepath.Join(st.dir, progressDir, name) }

// writeProgress replaces a file's progress record. A record that cannot
// be written only costs bytes after a restart: the error is not returned.
func (st *Staging) writeProgress(name string, rec *progressRecord) {
	b, _ := json.Marshal(rec)
	dir := filepath.Join(st.dir, progressDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	tmp := filepath.Join(dir, fsutil.TempPrefix+name)
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return
	}
	if err := os.Rename(tmp, st.progressPath(name)); err != nil {
		os.Remove(tmp)
	}
}

// scan lists the files an earlier process left in the staging directory
// and removes its temp files.
func (st *Staging) scan() (map[string]bool, error) {
	entries, err := os.ReadDir(st.dir)
	if err != nil {
		return nil, fmt.Errorf("shardstore: list staging %s: %w", st.id, err)
	}
	found := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, "."):
			os.RemoveAll(filepath.Join(st.dir, name))
		case name == stagedOpsDir || name == progressDir:
		case e.Type().IsRegular() && ValidateName(name) == nil:
			found[name] = true
		}
	}
	return found, nil
}

// Keep prepares the staging for a plan that stages files: the staged ops
// are dropped (the plan's ops are fetched afresh); a staged file that
// files does not list with the same metadata is removed; and the files an
// earlier process of this recovery left are checked (see above) before
// they count. It returns how many files, and bytes of them, stay staged,
// complete or partial.
func (st *Staging) Keep(files []FileMeta) (kept int, keptBytes int64, err error) {
	if err := st.DiscardOps(); err != nil {
		return 0, 0, err
	}
	want := make(map[string]FileMeta, len(files))
	for _, f := range files {
		want[f.Name] = f
	}
	st.mu.Lock()
	var stale []string
	for name, s := range st.files {
		if w, ok := want[name]; !ok || w != s.meta {
			stale = append(stale, name)
		}
	}
	found := st.found
	st.found = nil
	st.mu.Unlock()
	for name := range found {
		if _, ok := want[name]; !ok {
			stale = append(stale, name)
		}
	}
	for _, name := range stale {
		if err := st.RemoveFile(name); err != nil {
			return 0, 0, err
		}
	}
	for name := range found {
		w, ok := want[name]
		if !ok {
			continue
		}
		s, err := st.check(w)
		if err != nil {
			return 0, 0, err
		}
		st.mu.Lock()
		st.files[name] = s
		st.mu.Unlock()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, s := range st.files {
		n := s.good
		if s.verified {
			n = s.meta.Length
		}
		if n > 0 {
			kept++
			keptBytes += n
		}
	}
	return kept, keptBytes, nil
}

// check returns what can be trusted of a file an earlier process staged
// for meta, cutting the file to it.
func (st *Staging) check(meta FileMeta) (*stagedState, error) {
	path := filepath.Join(st.dir, meta.Name)
	s := &stagedState{meta: meta}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("shardstore: staged %s: %w", meta.Name, err)
	}
	switch size := fi.Size(); {
	case size == meta.Length:
		if err := verifyFile(path, meta); err == nil {
			s.verified, s.good, s.crc, s.crcOff = true, meta.Length, meta.CRC32C, meta.Length
			binary.LittleEndian.PutUint32(s.tail[:], meta.CRC32C)
			return s, nil
		} else if !errors.Is(err, ErrCorrupt) {
			return nil, err
		}
	case size < meta.Length:
		if good, crc, ok := st.recordedPrefix(path, meta, size); ok {
			s.good, s.recorded, s.crc, s.crcOff = good, good, crc, good
		}
	}
	if err := os.Truncate(path, s.good); err != nil {
		return nil, fmt.Errorf("shardstore: staged %s: %w", meta.Name, err)
	}
	if s.good == 0 {
		os.Remove(st.progressPath(meta.Name))
	}
	return s, nil
}

// recordedPrefix returns the prefix of a partial file its progress record
// names, when the record is for meta and the prefix, present, still reads
// with the recorded checksum.
func (st *Staging) recordedPrefix(path string, meta FileMeta, size int64) (int64, uint32, bool) {
	b, err := os.ReadFile(st.progressPath(meta.Name))
	var rec progressRecord
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.Length != meta.Length || rec.CRC32C != meta.CRC32C ||
		rec.Good <= 0 || rec.Good > size || rec.Good > meta.Length-4 {
		return 0, 0, false
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, rec.Good)); err != nil || h.Sum32() != rec.PrefixCRC {
		return 0, 0, false
	}
	return rec.Good, rec.PrefixCRC, true
}

// Verified reports whether the file is staged with meta and verified (by
// this process or, after a restart, by Keep): it need not be fetched.
func (st *Staging) Verified(meta FileMeta) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.files[meta.Name]
	return ok && s.verified && s.meta == meta
}

// Suspend ends this process's use of the staging and keeps its directory,
// with a progress record for each partial file: the node is stopping and
// the recovery resumes from what is staged when it starts again. Call it
// once no writer uses the staging.
func (st *Staging) Suspend() error {
	st.mu.Lock()
	st.done = true
	if st.ops != nil {
		st.ops.close()
		st.ops = nil
	}
	recs := map[string]*progressRecord{}
	for name, s := range st.files {
		if rec := s.progress(true); rec != nil {
			recs[name] = rec
		}
	}
	st.mu.Unlock()
	for name, rec := range recs {
		st.writeProgress(name, rec)
	}
	st.s.mu.Lock()
	delete(st.s.stagings, st.id)
	st.s.mu.Unlock()
	return nil
}
