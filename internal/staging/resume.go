package staging

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/internal/fsutil"
)

const (
	// progressDir holds one progress record per partial file; its name is
	// never one of a file recoverd stages (doc.go, "The directory").
	progressDir = "progress.staged"
	// progressEvery is how many newly checked bytes of a file make its
	// progress record be written again. A record costs a create, a write
	// and a rename: at every 1 MiB that was 13% of the target's CPU in
	// bench case 1 (bench/README.md, Issue 15 item 12). A crash re-fetches
	// at most this much of each file in flight.
	progressEvery = 8 << 20
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
// area's lock held.
func (s *fileState) progress(force bool) *progressRecord {
	if s.verified || s.good <= s.recorded || s.crcOff != s.good || s.good > s.meta.Length-4 {
		return nil
	}
	if !force && s.good-s.recorded < progressEvery {
		return nil
	}
	s.recorded = s.good
	return &progressRecord{Length: s.meta.Length, CRC32C: s.meta.CRC32C, Good: s.good, PrefixCRC: s.crc}
}

func (a *Area) progressPath(name string) string { return filepath.Join(a.dir, progressDir, name) }

// writeProgress replaces a file's progress record. A record that cannot
// be written only costs bytes after a restart: the error is not returned.
func (a *Area) writeProgress(name string, rec *progressRecord) {
	b, _ := json.Marshal(rec)
	dir := filepath.Join(a.dir, progressDir)
	if !a.progressDirMade.Load() {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return
		}
		a.progressDirMade.Store(true)
	}
	tmp := filepath.Join(dir, fsutil.TempPrefix+name)
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return
	}
	if err := os.Rename(tmp, a.progressPath(name)); err != nil {
		os.Remove(tmp)
	}
}

// Keep prepares the area for a plan that stages files: a staged file that
// files does not list with the same metadata is removed, and the files an
// earlier process of this recovery left are checked (doc.go, "Resuming")
// before they count. It returns how many files, and bytes of them, stay
// staged, complete or partial. (The staged ops are the engine's: the
// caller discards them.)
func (a *Area) Keep(files []engine.FileMeta) (kept int, keptBytes int64, err error) {
	want := make(map[string]engine.FileMeta, len(files))
	for _, f := range files {
		want[f.Name] = f
	}
	a.mu.Lock()
	var stale []string
	for name, s := range a.files {
		if w, ok := want[name]; !ok || w != s.meta {
			stale = append(stale, name)
		}
	}
	found := a.found
	a.found = nil
	a.mu.Unlock()
	for name := range found {
		if _, ok := want[name]; !ok {
			stale = append(stale, name)
		}
	}
	for _, name := range stale {
		if err := a.RemoveFile(name); err != nil {
			return 0, 0, err
		}
	}
	for name := range found {
		w, ok := want[name]
		if !ok {
			continue
		}
		s, err := a.check(w)
		if err != nil {
			return 0, 0, err
		}
		a.mu.Lock()
		a.files[name] = s
		a.mu.Unlock()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.files {
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
func (a *Area) check(meta engine.FileMeta) (*fileState, error) {
	path := filepath.Join(a.dir, meta.Name)
	s := &fileState{meta: meta, sum: newRunningSum(meta.Length)} // an earlier process's bytes: not summed here
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("staging: %s: %w", meta.Name, err)
	}
	switch size := fi.Size(); {
	case size == meta.Length:
		if err := verifyFile(path, meta); err == nil {
			s.verified, s.good, s.crc, s.crcOff = true, meta.Length, meta.CRC32C, meta.Length
			binary.LittleEndian.PutUint32(s.tail[:], meta.CRC32C)
			return s, nil
		} else if !errors.Is(err, engine.ErrCorrupt) {
			return nil, err
		}
	case size < meta.Length:
		if good, crc, ok := a.recordedPrefix(path, meta, size); ok {
			s.good, s.recorded, s.crc, s.crcOff = good, good, crc, good
		}
	}
	if err := os.Truncate(path, s.good); err != nil {
		return nil, fmt.Errorf("staging: %s: %w", meta.Name, err)
	}
	if s.good == 0 {
		os.Remove(a.progressPath(meta.Name))
	}
	return s, nil
}

// recordedPrefix returns the prefix of a partial file its progress record
// names, when the record is for meta and the prefix, present, still reads
// with the recorded checksum.
func (a *Area) recordedPrefix(path string, meta engine.FileMeta, size int64) (int64, uint32, bool) {
	b, err := os.ReadFile(a.progressPath(meta.Name))
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

// Suspend ends this process's use of the area and writes a progress
// record for each partial file: the node is stopping and the recovery
// resumes from what is staged when it starts again. Call it once no
// writer uses the area.
func (a *Area) Suspend() {
	a.mu.Lock()
	a.done = true
	recs := map[string]*progressRecord{}
	for name, s := range a.files {
		if rec := s.progress(true); rec != nil {
			recs[name] = rec
		}
	}
	a.mu.Unlock()
	for name, rec := range recs {
		a.writeProgress(name, rec)
	}
}
