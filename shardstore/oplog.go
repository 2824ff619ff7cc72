package shardstore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"github.com/recoverd/recoverd/seqno"
)

// The op log of a commit is a directory of generation files
// oplog/<epoch>/<gen>.log (doc.go describes epochs). A record is u32
// payload length, u32 CRC32C of the payload, payload (an Op encoded as in
// segments). A new generation starts at every flush so that old ones can
// be dropped whole once retention no longer needs them.
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
	// locsHint sizes locs at the first op: growing a large index by
	// copies cost a tenth of an ops-only recovery's CPU on the target.
	locsHint int
}

// maxSizeHint bounds the entries preallocated from the size of the last
// generation or memtable.
const maxSizeHint = 1 << 18

func (g *oplogGen) add(seq seqno.SeqNo, off int64) {
	if g.locs == nil && g.locsHint > 0 {
		g.locs = make([]opLoc, 0, g.locsHint)
	}
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
	gens   []*oplogGen // ascending; the last one takes the appends
	// f and w are the newest generation's file and write buffer, held
	// only while records are being written: opened by the first append,
	// released once every record appended is durable (releaseLocked). An
	// idle log holds no descriptor and no buffer: a node with thousands
	// of shards open pays for the ones being written to.
	f   *os.File
	w   *bufio.Writer
	buf []byte
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

// createGen creates generation gen, empty, and makes it the one appends
// go to (the caller syncs the directory).
func (l *opLog) createGen(gen uint64) error {
	path := filepath.Join(l.dir, genFileName(gen))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("shardstore: create op log generation: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("shardstore: create op log generation: %w", err)
	}
	g := &oplogGen{gen: gen, path: path}
	if len(l.gens) > 0 {
		// A flush rolls the log: the next generation is likely as long
		// (bounded: 4 MiB of index at most before it holds an op).
		g.locsHint = min(len(l.current().locs), maxSizeHint)
	}
	l.gens = append(l.gens, g)
	return nil
}

// oplogWriters are the write buffers of the op logs being written to:
// one is taken by a log's first append and given back once its records
// are durable.
var oplogWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 256<<10) }}

// maxIdleBuf is the largest record scratch buffer an idle log keeps.
const maxIdleBuf = 64 << 10

// writerLocked returns the buffer appends go to, opening the newest
// generation for appending and taking a buffer if the log is idle.
func (l *opLog) writerLocked() (*bufio.Writer, error) {
	if l.w != nil {
		return l.w, nil
	}
	if _, err := l.fileLocked(); err != nil {
		return nil, err
	}
	l.w = oplogWriters.Get().(*bufio.Writer)
	l.w.Reset(l.f)
	return l.w, nil
}

// fileLocked returns the newest generation's file, opened for appending.
func (l *opLog) fileLocked() (*os.File, error) {
	if l.f == nil {
		f, err := os.OpenFile(l.current().path, os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("shardstore: open op log: %w", err)
		}
		l.f = f
	}
	return l.f, nil
}

// releaseLocked gives back the write buffer and closes the file once
// every record appended is durable or dropped (syncMu and mu held: no
// fsync is running on the file, no append is filling the buffer).
func (l *opLog) releaseLocked() error {
	if l.appended != l.synced || l.w != nil && l.w.Buffered() > 0 {
		return nil
	}
	if cap(l.buf) > maxIdleBuf {
		l.buf = nil
	}
	if l.w != nil {
		l.w.Reset(nil)
		oplogWriters.Put(l.w)
		l.w = nil
	}
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// flushLocked writes what the buffer holds to the file.
func (l *opLog) flushLocked() error {
	if l.w == nil {
		return nil
	}
	return l.w.Flush()
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
	w, err := l.writerLocked()
	if err != nil {
		return 0, err
	}
	for i := range ops {
		l.buf = appendRecord(l.buf[:0], &ops[i])
		if _, err := w.Write(l.buf); err != nil {
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
	// Records are pending (synced < ticket <= appended): the log holds
	// its file and buffer until they are durable.
	err := l.flushLocked()
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
	// The records are durable: an error closing the file after its fsync
	// loses nothing (the next append opens it again).
	_ = l.releaseLocked()
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
	if l.w != nil {
		l.w.Reset(l.f) // drops what it buffered
	}
	f, terr := l.fileLocked()
	if terr == nil {
		terr = f.Truncate(cur.durable)
	}
	if terr == nil {
		terr = f.Sync()
	}
	if terr == nil {
		terr = l.releaseLocked()
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

func (l *opLog) close() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil // idle: everything appended is durable
	}
	err := l.flushLocked()
	if err == nil {
		err = l.f.Sync()
	}
	if l.w != nil {
		l.w.Reset(nil)
		oplogWriters.Put(l.w)
		l.w = nil
	}
	err = errors.Join(err, l.f.Close())
	l.f = nil
	return err
}
