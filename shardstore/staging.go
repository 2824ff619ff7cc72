package shardstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/recoverd/recoverd/internal/fsutil"
	"github.com/recoverd/recoverd/seqno"
)

var (
	// ErrStagingExists is returned when a recovery id already stages files.
	ErrStagingExists = errors.New("shardstore: staging already exists")
	// ErrConflict is returned when publishing would replace a file the
	// current commit references with different content.
	ErrConflict = errors.New("shardstore: file conflicts with the current commit")
)

// Staging holds the files of one in-flight recovery under
// staging/<recovery-id>/. Nothing in it is read as data until Publish moves
// the whole set into place with one commit point.
type Staging struct {
	s   *Shard
	id  string
	dir string

	mu        sync.Mutex
	files     map[string]*stagedState
	ops       *opLog // staged ops, created by the first AppendOps
	stagedOps int
	done      bool
	// found lists the files an earlier process of this recovery left in
	// the directory: none counts until Keep has checked it.
	found map[string]bool
}

// stagedOpsDir holds the staged op log inside a staging directory; its
// name cannot clash with a file name (names are validated, and this one
// is never a segment name).
const stagedOpsDir = "ops.staged"

type stagedState struct {
	meta     FileMeta
	verified bool
	// good is the length of the prefix a writer declared written and
	// checked (MarkGood): a transfer cut short resumes after it. After a
	// restart it is what Keep could check again (staging_resume.go).
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
}

// track extends the running checksum with p written at off, when it
// continues the bytes already summed.
func (s *stagedState) track(p []byte, off int64) {
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

// StartStaging creates staging/<recoveryID>/ for a recovery. When the
// directory is there already (the recovery ran in an earlier process of
// this node, which kept it: Options.KeepStaging), its files stay for Keep
// to check against the recovery's plan; until then none counts as staged.
func (s *Shard) StartStaging(recoveryID string) (*Staging, error) {
	if err := ValidateName(recoveryID); err != nil {
		return nil, fmt.Errorf("recovery id: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if _, ok := s.stagings[recoveryID]; ok {
		return nil, fmt.Errorf("%w: %s", ErrStagingExists, recoveryID)
	}
	dir := filepath.Join(s.dir, stagingDir, recoveryID)
	if err := fsutil.MkdirAllSync(dir, 0o755); err != nil {
		return nil, fmt.Errorf("shardstore: create staging: %w", err)
	}
	st := &Staging{s: s, id: recoveryID, dir: dir, files: map[string]*stagedState{}}
	found, err := st.scan()
	if err != nil {
		return nil, err
	}
	st.found = found
	s.stagings[recoveryID] = st
	return st, nil
}

// Stagings lists the recovery ids staging files in this process.
func (s *Shard) Stagings() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.stagings))
	for id := range s.stagings {
		out = append(out, id)
	}
	return out
}

// Dir is the staging directory.
func (st *Staging) Dir() string { return st.dir }

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
		return nil, fmt.Errorf("shardstore: staging %s is finished", st.id)
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

// RemoveFile deletes one staged file (a download that failed, to be fetched
// from elsewhere).
func (st *Staging) RemoveFile(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.files, name)
	delete(st.found, name)
	os.Remove(st.progressPath(name))
	if err := os.Remove(filepath.Join(st.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Files lists the staged files.
func (st *Staging) Files() []FileMeta {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]FileMeta, 0, len(st.files))
	for _, f := range st.files {
		out = append(out, f.meta)
	}
	return out
}

// Abandon deletes the staging directory and everything in it.
func (st *Staging) Abandon() error {
	st.mu.Lock()
	st.done = true
	if st.ops != nil {
		st.ops.close()
		st.ops = nil
	}
	st.mu.Unlock()
	// Removed before it is unregistered, so that a concurrent Sweep does
	// not take it for a leftover; if removal fails, Sweep retries it.
	err := os.RemoveAll(st.dir)
	st.s.mu.Lock()
	delete(st.s.stagings, st.id)
	st.s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("shardstore: remove staging %s: %w", st.id, err)
	}
	return nil
}

// Publish makes files (the complete new file set: staged files plus files
// of the current commit to keep) the shard's content with data as its
// commit user data, in one atomic commit point. The op log starts afresh at
// data's local checkpoint: ops above it are replayed by the recovery.
// On error the shard is left at its previous commit.
func (st *Staging) Publish(files []FileMeta, data CommitData) error {
	if data.HistoryUUID == "" || data.LocalCheckpoint > data.MaxSeqNo || data.LocalCheckpoint < seqno.NoOpsPerformed {
		return fmt.Errorf("shardstore: publish with invalid commit data %+v", data)
	}
	if data.FormatVersion > FormatVersion {
		return fmt.Errorf("shardstore: cannot publish format %d, this build reads up to %d", data.FormatVersion, FormatVersion)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		return fmt.Errorf("shardstore: staging %s is finished", st.id)
	}
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	cur := s.commit.metadata()
	var moves []FileMeta
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f.Name] {
			return fmt.Errorf("shardstore: publish lists %s twice", f.Name)
		}
		seen[f.Name] = true
		if staged, ok := st.files[f.Name]; ok {
			if staged.meta != f {
				return fmt.Errorf("shardstore: staged %s does not match the published metadata", f.Name)
			}
			if !staged.verified {
				if err := verifyFile(filepath.Join(st.dir, f.Name), f); err != nil {
					return err
				}
				staged.verified = true
			}
			if old, ok := cur.Lookup(f.Name); ok && !old.SameAs(f) {
				return fmt.Errorf("%w: %s", ErrConflict, f.Name)
			}
			moves = append(moves, f)
			continue
		}
		old, ok := cur.Lookup(f.Name)
		if !ok || !old.SameAs(f) {
			return fmt.Errorf("shardstore: %s is neither staged nor the same in the current commit", f.Name)
		}
	}
	// The staged files must be durable before the commit can name them.
	// Each is fsynced and its error checked: a syncfs reports no writeback
	// error another descriptor has already seen (none at all before Linux
	// 5.8). The staged ops are fsynced when moveOps closes their log.
	if err := st.syncFiles(moves); err != nil {
		return err
	}
	s.opts.Failpoint("publish.before-rename")
	for _, f := range moves {
		if err := os.Rename(filepath.Join(st.dir, f.Name), filepath.Join(s.dir, f.Name)); err != nil {
			return fmt.Errorf("shardstore: move staged %s into place: %w", f.Name, err)
		}
	}
	if err := fsutil.SyncDir(s.dir); err != nil {
		return err
	}
	s.opts.Failpoint("publish.files-moved")
	segs := make([]*segment, 0, len(files))
	for _, f := range files {
		seg, err := openSegment(filepath.Join(s.dir, f.Name), f)
		if err != nil {
			return err
		}
		segs = append(segs, seg)
	}
	epoch := s.commit.OplogEpoch + 1
	epochPath := epochDir(s.dir, epoch)
	if err := os.RemoveAll(epochPath); err != nil { // left by an earlier failed publish
		return err
	}
	if err := st.moveOps(epochPath); err != nil {
		return err
	}
	if err := fsutil.SyncDir(filepath.Dir(epochPath)); err != nil {
		return err
	}
	data.MinRetainedSeqNo = data.LocalCheckpoint + 1
	next := &commitPoint{Generation: s.nextGen(), Files: append([]FileMeta(nil), files...), Data: data, OplogEpoch: epoch}
	s.opts.Failpoint("publish.before-commit")
	if err := writeCommit(s.dir, next); err != nil {
		return err
	}
	s.opts.Failpoint("publish.after-commit")
	closeErr := s.oplog.close()
	s.commit = next
	s.segments = segs
	s.contentVersion.Add(1)
	clear(s.memtable)
	s.memBytes = 0
	s.tracker = seqno.NewCheckpointTracker(data.MaxSeqNo, data.LocalCheckpoint)
	s.term = data.PrimaryTerm
	s.loadTermsLocked(next)
	s.history = data.HistoryUUID
	s.globalCP = data.GlobalCheckpoint
	s.leases.ResetFloor(data.MinRetainedSeqNo)
	st.done = true
	delete(s.stagings, st.id)
	var err error
	if s.oplog, err = s.openEpoch(next); err != nil {
		// The commit is durable; the staged ops are replayed at next open.
		s.closed = true
		return fmt.Errorf("shardstore: open the published op log (reopen the shard): %w", err)
	}
	err = s.afterCommitLocked()
	return errors.Join(closeErr, err, removeOtherEpochs(s.dir, epoch), os.RemoveAll(st.dir))
}

// AppendOps stages ops to be published with the files: after Publish they
// are part of the shard as if applied, in the same atomic step, so a crash
// never leaves the files without the ops fetched for them.
func (st *Staging) AppendOps(ops []Op) error {
	for i := range ops {
		if err := validateOp(&ops[i]); err != nil {
			return fmt.Errorf("staged op %d: %w", i, err)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		return fmt.Errorf("shardstore: staging %s is finished", st.id)
	}
	if st.ops == nil {
		l, err := openOpLog(filepath.Join(st.dir, stagedOpsDir), &st.s.opts, func(*Op) {})
		if err != nil {
			return err
		}
		st.ops = l
	}
	// Not fsynced here: staging is discarded at restart anyway, and Publish
	// makes the staged set durable before it counts.
	if _, err := st.ops.append(ops); err != nil {
		return err
	}
	st.stagedOps += len(ops)
	return nil
}

// DiscardOps drops the ops staged so far (a recovery that re-plans fetches
// the ops of its new plan); staged files stay.
func (st *Staging) DiscardOps() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		return fmt.Errorf("shardstore: staging %s is finished", st.id)
	}
	if st.ops != nil {
		st.ops.close()
		st.ops = nil
	}
	st.stagedOps = 0
	if err := os.RemoveAll(filepath.Join(st.dir, stagedOpsDir)); err != nil {
		return fmt.Errorf("shardstore: discard staged ops: %w", err)
	}
	return nil
}

// StagedOps is the number of ops staged with AppendOps.
func (st *Staging) StagedOps() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.stagedOps
}

// moveOps turns the staged op log (or an empty one) into the op log epoch
// at dst.
func (st *Staging) moveOps(dst string) error {
	if st.ops == nil {
		return fsutil.MkdirAllSync(dst, 0o755)
	}
	if err := st.ops.close(); err != nil {
		return err
	}
	st.ops = nil
	if err := fsutil.MkdirAllSync(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.Rename(filepath.Join(st.dir, stagedOpsDir), dst)
}

// syncParallel bounds the fsyncs of staged files in flight at once.
const syncParallel = 16

// syncFiles fsyncs every file in parallel (at most syncParallel at once),
// each on a descriptor of its own, and returns the first error.
func (st *Staging) syncFiles(files []FileMeta) error {
	var g errgroup.Group
	g.SetLimit(syncParallel)
	for _, f := range files {
		path := filepath.Join(st.dir, f.Name)
		g.Go(func() error {
			if err := st.s.opts.Fault("staging.fsync", path); err != nil {
				return fmt.Errorf("shardstore: fsync staged %s: %w", f.Name, err)
			}
			fd, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("shardstore: open staged %s: %w", f.Name, err)
			}
			err = fd.Sync()
			if cerr := fd.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("shardstore: fsync staged %s: %w", f.Name, err)
			}
			return nil
		})
	}
	return g.Wait()
}
