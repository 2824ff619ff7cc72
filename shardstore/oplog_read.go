package shardstore

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/recoverd/recoverd/seqno"
)

// Reading the op log: records decoded one by one, ops by seqno range.

// recordReader decodes op log records one by one without an allocation
// per record: each record's payload is read into a shared arena chunk and
// the decoded op's key and value point into it (arena.go), so an op stays
// valid after the next record is read, as long as anyone holds it.
type recordReader struct {
	hdr   [recHeaderLen]byte
	arena arena
}

// read decodes one record. io.EOF means a clean end; an ErrCorrupt error
// a damaged or incomplete record; any other error is the reader's (an I/O
// error, not damage).
func (d *recordReader) read(r *bufio.Reader, op *Op) (int, error) {
	if _, err := io.ReadFull(r, d.hdr[:]); err != nil {
		if err == io.EOF {
			return 0, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return 0, fmt.Errorf("%w: incomplete record header", ErrCorrupt)
		}
		return 0, err
	}
	n := binary.LittleEndian.Uint32(d.hdr[0:])
	if n == 0 || n > maxRecordSize {
		return 0, fmt.Errorf("%w: record length %d", ErrCorrupt, n)
	}
	payload := d.arena.alloc(int(n))
	if _, err := io.ReadFull(r, payload); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return 0, fmt.Errorf("%w: incomplete record", ErrCorrupt)
		}
		return 0, err
	}
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(d.hdr[4:]) {
		return 0, fmt.Errorf("%w: record checksum", ErrCorrupt)
	}
	if err := decodeOp(payload, op); err != nil {
		return 0, err
	}
	return recHeaderLen + int(n), nil
}

// decodeOp decodes a record's payload (appendEntry's encoding) into op,
// whose key and value then point into payload: the caller never changes
// payload afterwards.
func decodeOp(payload []byte, op *Op) error {
	if err := decodeEntry(payload, op); err != nil {
		return fmt.Errorf("%w: record payload: %v", ErrCorrupt, err)
	}
	return nil
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
	if err := l.flushLocked(); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("shardstore: write op log: %w", err)
	}
	var (
		paths []string
		locs  []loc
		n     int
	)
	for _, g := range l.gens {
		if len(g.locs) > 0 && g.maxSeq >= r.From && g.minSeq <= r.To {
			n += len(g.locs)
		}
	}
	locs = make([]loc, 0, min(int64(n), r.Len()))
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
	// A primary's ops, and a replica's applied in order, are logged in
	// seqno order already: sort only when they are not.
	if !sort.SliceIsSorted(locs, func(i, j int) bool { return locs[i].seq < locs[j].seq }) {
		sort.SliceStable(locs, func(i, j int) bool { return locs[i].seq < locs[j].seq })
	}
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
	var (
		op   Op
		rr   recordReader
		last = seqno.Unassigned
	)
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
		n, err := rr.read(br, &op)
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
