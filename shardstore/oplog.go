package shardstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/recoverd/recoverd/internal/fsutil"
	"github.com/recoverd/recoverd/seqno"
)

// The op log is a directory of generation files oplog/<gen>.log. A record
// is u32 payload length, u32 CRC32C of the payload, payload (an Op encoded
// as in segments). A new generation starts at every flush so that old ones
// can be dropped whole once retention no longer needs them.
//
// Durability uses group commit: appenders write into a buffer and then wait
// in sync for an fsync that covers their records; one fsync covers every
// record appended before it started.

const (
	oplogDir      = "oplog"
	oplogSuffix   = ".log"
	recHeaderLen  = 8
	maxRecordSize = 2*maxField + 64
)

var zeroHeader [recHeaderLen]byte

type opLoc struct {
	seq seqno.SeqNo
	off int64
}

type oplogGen struct {
	gen            uint64
	path           string
	locs           []opLoc
	minSeq, maxSeq seqno.SeqNo
	size           int64
	// durable is the length of the file's prefix known durable: its size
	// at open (or 0 when created) and after every fsync that returned.
	durable int64
}

func (g *oplogGen) add(seq seqno.SeqNo, off int64) {
	if len(g.locs) == 0 || seq < g.minSeq {
		g.minSeq = seq
	}
	if len(g.locs) == 0 || seq > g.maxSeq {
		g.maxSeq = seq
	}
	g.locs = append(g.locs, opLoc{seq, off})
}

type opLog struct {
	dir       string
	failpoint func(string)
	fault     func(point, path string) error
	// repaired describes the incomplete tail cut at open, if any.
	repaired []string

	syncMu sync.Mutex // held by the one goroutine running an fsync; taken before mu
	mu     sync.Mutex
	gens   []*oplogGen // ascending; the last one is open for appends
	f      *os.File
	w      *bufio.Writer
	buf    []byte
	// appended counts records written to w; synced counts those made
	// durable or lost.
	appended, synced uint64
	// lost are the tickets whose records a failed write or fsync dropped
	// (cutBackLocked): their sync fails with the error.
	lost []lostTickets
	// broken is set when the log could not even be cut back: every later
	// append and sync fails with it (reopen the shard).
	broken error
	// holds are the first seqnos readers without the shard's lock (a
	// digest) still need: dropGens keeps every generation holding one.
	holds map[*seqno.SeqNo]struct{}
}

// lostTickets are tickets from..to whose records were dropped by err.
type lostTickets struct {
	from, to uint64
	err      error
}

func genFileName(gen uint64) string { return fmt.Sprintf("%016d%s", gen, oplogSuffix) }

// epochDir is the op log directory of one epoch.
func epochDir(shardDir string, epoch uint64) string {
	return filepath.Join(shardDir, oplogDir, fmt.Sprintf("%08d", epoch))
}

// removeOtherEpochs deletes op log epochs other than keep: older ones a
// publish replaced, or a newer one a crash left before its commit.
func removeOtherEpochs(shardDir string, keep uint64) error {
	root := filepath.Join(shardDir, oplogDir)
	entries, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("shardstore: list op log epochs: %w", err)
	}
	for _, e := range entries {
		if n, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && n == keep {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			return fmt.Errorf("shardstore: remove op log epoch %s: %w", e.Name(), err)
		}
	}
	return nil
}

// openOpLog opens the log in dir, cutting an incomplete write at the tail
// of the newest generation (scanGen says what may be cut) and calling
// replay for every record in order of appearance.
func openOpLog(dir string, opts *Options, replay func(*Op)) (*opLog, error) {
	if err := fsutil.MkdirAllSync(dir, 0o755); err != nil {
		return nil, fmt.Errorf("shardstore: create op log dir: %w", err)
	}
	if _, err := fsutil.RemoveTemps(dir); err != nil {
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
	if len(l.gens) == 0 {
		if err := l.createGen(1); err != nil {
			return nil, err
		}
	} else {
		last := l.gens[len(l.gens)-1]
		f, err := os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("shardstore: open op log: %w", err)
		}
		l.f, l.w = f, bufio.NewWriterSize(f, 256<<10)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		l.f.Close()
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
	r := bufio.NewReaderSize(faultReader{f, fault, path}, 1<<20)
	var off int64
	var op Op
	for {
		n, err := readRecord(r, &op)
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

// readRecord decodes one record. io.EOF means a clean end; an ErrCorrupt
// error a damaged or incomplete record; any other error is the reader's
// (an I/O error, not damage).
func readRecord(r *bufio.Reader, op *Op) (int, error) {
	var hdr [recHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return 0, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return 0, fmt.Errorf("%w: incomplete record header", ErrCorrupt)
		}
		return 0, err
	}
	n := binary.LittleEndian.Uint32(hdr[0:])
	if n == 0 || n > maxRecordSize {
		return 0, fmt.Errorf("%w: record length %d", ErrCorrupt, n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return 0, fmt.Errorf("%w: incomplete record", ErrCorrupt)
		}
		return 0, err
	}
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
		return 0, fmt.Errorf("%w: record checksum", ErrCorrupt)
	}
	if err := decodeOp(payload, op); err != nil {
		return 0, err
	}
	return recHeaderLen + int(n), nil
}

func decodeOp(payload []byte, op *Op) error {
	br := bufio.NewReaderSize(bytes.NewReader(payload), 16)
	if err := readEntry(br, op); err != nil {
		return fmt.Errorf("%w: record payload: %v", ErrCorrupt, err)
	}
	if br.Buffered() != 0 {
		return fmt.Errorf("%w: record payload has trailing bytes", ErrCorrupt)
	}
	return nil
}

func (l *opLog) createGen(gen uint64) error {
	path := filepath.Join(l.dir, genFileName(gen))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("shardstore: create op log generation: %w", err)
	}
	l.gens = append(l.gens, &oplogGen{gen: gen, path: path})
	l.f, l.w = f, bufio.NewWriterSize(f, 256<<10)
	return nil
}

func (l *opLog) current() *oplogGen { return l.gens[len(l.gens)-1] }

// append buffers ops and returns the ticket to pass to sync. A write
// error (the buffer filled and went to the file) cuts the log back to its
// last fsync, as a failed sync does.
func (l *opLog) append(ops []Op) (uint64, error) {
	ticket, err := l.appendBuffered(ops)
	if err == nil || l.broken != nil {
		return ticket, err
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	return 0, l.cutBackLocked(err)
}

func (l *opLog) appendBuffered(ops []Op) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return 0, l.broken
	}
	cur := l.current()
	for i := range ops {
		l.buf = appendRecord(l.buf[:0], &ops[i])
		if _, err := l.w.Write(l.buf); err != nil {
			return 0, fmt.Errorf("shardstore: append op log: %w", err)
		}
		cur.add(ops[i].SeqNo, cur.size)
		cur.size += int64(len(l.buf))
		l.appended++
	}
	return l.appended, nil
}

// appendRecord appends op to b as one op log record.
func appendRecord(b []byte, op *Op) []byte {
	start := len(b)
	b = appendEntry(append(b, zeroHeader[:]...), op)
	payload := b[start+recHeaderLen:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, castagnoli))
	return b
}

// sync returns once every record up to ticket is durable, or with the
// error that dropped it.
func (l *opLog) sync(ticket uint64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	for _, lt := range l.lost {
		if ticket >= lt.from && ticket <= lt.to {
			return lt.err
		}
	}
	if l.synced >= ticket {
		return nil
	}
	l.mu.Lock()
	if l.broken != nil {
		l.mu.Unlock()
		return l.broken
	}
	err := l.w.Flush()
	target, f, cur, size := l.appended, l.f, l.current(), l.current().size
	l.mu.Unlock()
	if err == nil {
		// Appenders go on filling the buffer while the fsync runs; the next
		// fsync covers them (group commit).
		l.failpoint("oplog.before-fsync")
		err = l.fsync(f)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		return l.cutBackLocked(err)
	}
	l.synced, cur.durable = target, size
	return nil
}

// cutBackLocked handles a failed write or fsync of the current generation
// (syncMu and mu held). Once an fsync failed, a later one that succeeds
// proves nothing about the pages written before it (the kernel reports a
// writeback error once and may drop the pages), so every record appended
// since the last good fsync is dropped: the file is cut back to its
// durable prefix and fsynced, and the tickets of those records fail with
// the error. Their ops were never applied (write applies only after sync),
// so they are neither visible nor committed, now or after a reopen. If the
// cut itself fails the log is broken until the shard is reopened.
func (l *opLog) cutBackLocked(cause error) error {
	cur := l.current()
	err := fmt.Errorf("shardstore: op log %s: %w; the %d ops appended since its last fsync are dropped", cur.path, cause, l.appended-l.synced)
	if l.appended > l.synced {
		l.lost = append(l.lost, lostTickets{from: l.synced + 1, to: l.appended, err: err})
	}
	l.synced = l.appended
	l.w.Reset(l.f)
	terr := l.f.Truncate(cur.durable)
	if terr == nil {
		terr = l.f.Sync()
	}
	if terr != nil {
		l.broken = fmt.Errorf("%w; cutting it back to its last fsync failed too (%w): reopen the shard", err, terr)
		return l.broken
	}
	n := sort.Search(len(cur.locs), func(i int) bool { return cur.locs[i].off >= cur.durable })
	cur.locs, cur.size = cur.locs[:n], cur.durable
	for i, lc := range cur.locs {
		if i == 0 || lc.seq < cur.minSeq {
			cur.minSeq = lc.seq
		}
		if i == 0 || lc.seq > cur.maxSeq {
			cur.maxSeq = lc.seq
		}
	}
	return err
}

// fsync makes f durable (Options.Fault may fail it first).
func (l *opLog) fsync(f *os.File) error {
	if err := l.fault("oplog.fsync", f.Name()); err != nil {
		return err
	}
	return f.Sync()
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

// roll makes everything durable and starts generation gen (which must be
// above the current one).
func (l *opLog) roll(gen uint64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return l.broken
	}
	err := l.w.Flush()
	if err == nil {
		err = l.fsync(l.f)
	}
	if err != nil {
		return l.cutBackLocked(err)
	}
	l.synced = l.appended
	if err := l.f.Close(); err != nil {
		return err
	}
	if err := l.createGen(gen); err != nil {
		return err
	}
	return fsutil.SyncDir(l.dir)
}

func (l *opLog) nextGen() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current().gen + 1
}

// hold keeps every op from seqno from on in the log until release.
func (l *opLog) hold(from seqno.SeqNo) (release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holds == nil {
		l.holds = map[*seqno.SeqNo]struct{}{}
	}
	h := &from
	l.holds[h] = struct{}{}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.holds, h)
	}
}

// heldLocked reports whether a hold needs an op of g.
func (l *opLog) heldLocked(g *oplogGen) bool {
	for h := range l.holds {
		if g.maxSeq >= *h {
			return true
		}
	}
	return false
}

// dropGens deletes every generation, but the open one and those a hold
// needs, for which drop returns true.
func (l *opLog) dropGens(drop func(*oplogGen) bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := l.gens[:0]
	var errs []error
	for i, g := range l.gens {
		if i < len(l.gens)-1 && drop(g) && !l.heldLocked(g) {
			if err := os.Remove(g.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
				keep = append(keep, g)
			}
			continue
		}
		keep = append(keep, g)
	}
	clear(l.gens[len(keep):])
	l.gens = keep
	return errors.Join(errs...)
}

// read calls fn for every logged op with a seqno in r, in seqno order, each
// seqno once.
func (l *opLog) read(r seqno.Range, fn func(*Op) error) error {
	type loc struct {
		gen int32
		off int64
		seq seqno.SeqNo
	}
	l.mu.Lock()
	if err := l.w.Flush(); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("shardstore: write op log: %w", err)
	}
	var (
		paths []string
		locs  []loc
	)
	for _, g := range l.gens {
		if len(g.locs) == 0 || g.maxSeq < r.From || g.minSeq > r.To {
			continue
		}
		paths = append(paths, g.path)
		for _, lc := range g.locs {
			if r.Contains(lc.seq) {
				locs = append(locs, loc{int32(len(paths) - 1), lc.off, lc.seq})
			}
		}
	}
	l.mu.Unlock()
	sort.SliceStable(locs, func(i, j int) bool { return locs[i].seq < locs[j].seq })
	files := make([]*os.File, len(paths))
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	// Records in seqno order are mostly contiguous in one file: one
	// buffered reader follows them and seeks only where they are not.
	br := bufio.NewReaderSize(nil, 256<<10)
	curGen, curNext := int32(-1), int64(-1)
	var op Op
	last := seqno.Unassigned
	for _, lc := range locs {
		if lc.seq == last {
			continue
		}
		if lc.gen != curGen || lc.off != curNext {
			if files[lc.gen] == nil {
				f, err := os.Open(paths[lc.gen])
				if err != nil {
					return fmt.Errorf("shardstore: read op log: %w", err)
				}
				files[lc.gen] = f
			}
			br.Reset(io.NewSectionReader(files[lc.gen], lc.off, 1<<62))
			curGen = lc.gen
		}
		n, err := readRecord(br, &op)
		if err != nil {
			return fmt.Errorf("op log %s at %d: %w", filepath.Base(paths[lc.gen]), lc.off, err)
		}
		curNext = lc.off + int64(n)
		last = lc.seq
		if err := fn(&op); err != nil {
			return err
		}
	}
	return nil
}

// avgOpBytes is the mean size of a logged op record (0 with none logged).
func (l *opLog) avgOpBytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var bytes, ops int64
	for _, g := range l.gens {
		bytes += g.size
		ops += int64(len(g.locs))
	}
	if ops == 0 {
		return 0
	}
	return bytes / ops
}

func (l *opLog) close() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.w.Flush()
	if err == nil {
		err = l.f.Sync()
	}
	return errors.Join(err, l.f.Close())
}
