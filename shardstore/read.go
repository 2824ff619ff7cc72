package shardstore

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// Get returns the live value of key.
func (s *Shard) Get(key string) (value []byte, seq seqno.SeqNo, found bool, err error) {
	s.touch()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *Op
	if op, ok := s.memtable[key]; ok {
		best = op
	}
	for _, seg := range s.segments {
		e, ok, err := seg.get(key)
		if err != nil {
			return nil, 0, false, err
		}
		if ok && (best == nil || newer(&e, best)) {
			best = &e
		}
	}
	if best == nil || best.Kind == OpDelete {
		return nil, seqno.Unassigned, false, nil
	}
	return best.Value, best.SeqNo, true, nil
}

// Scan calls fn for every live document in key order with its seqno. It
// holds the shard's read lock while it runs (writes wait); ctx cancels it
// (looked at every scanCheckEvery documents), and its error is then the
// context's.
func (s *Shard) Scan(ctx context.Context, fn func(key string, value []byte, seq seqno.SeqNo) error) error {
	s.touch()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.scanLocked(cancellable(ctx, fn))
}

// scanCheckEvery is how many documents a scan (Scan, a digest) passes to
// its function between two looks at its context.
const scanCheckEvery = 1024

// cancellable wraps a scan's function so that the scan ends with ctx's
// error once ctx is done, looking at it every scanCheckEvery documents.
func cancellable(ctx context.Context, fn func(key string, value []byte, seq seqno.SeqNo) error) func(key string, value []byte, seq seqno.SeqNo) error {
	docs := 0
	return func(key string, value []byte, seq seqno.SeqNo) error {
		if docs++; docs%scanCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return fn(key, value, seq)
	}
}

// scanMergeMax bounds the segments the streaming scan opens at once; a
// shard with more is scanned one segment at a time (scanBySegment).
const scanMergeMax = 256

// scanLocked calls fn for every live document in key order.
func (s *Shard) scanLocked(fn func(key string, value []byte, seq seqno.SeqNo) error) error {
	return s.view().scan(fn)
}

func (s *Shard) scanMerged(fn func(key string, value []byte, seq seqno.SeqNo) error) error {
	return s.view().scanMerged(fn)
}

func (s *Shard) scanBySegment(fn func(key string, value []byte, seq seqno.SeqNo) error) error {
	return s.view().scanBySegment(fn)
}

// view is the shard's current content (s.mu held while it is scanned).
func (s *Shard) view() view { return view{segs: s.segments, mem: s.memtable} }

// view is content to scan: segments and, above them, ops by key (the
// memtable, or the ops a digest read from the op log). A view is read
// only; whoever scans it keeps its segments' files and its map unchanged.
type view struct {
	segs []*segment
	mem  map[string]*Op
}

// scan calls fn for every live document in key order.
func (v view) scan(fn func(key string, value []byte, seq seqno.SeqNo) error) error {
	if len(v.segs) > scanMergeMax {
		return v.scanBySegment(fn)
	}
	return v.scanMerged(fn)
}

// scanMerged streams a k-way merge of the segments and the ops above
// them: one sequential pass over each file.
func (v view) scanMerged(fn func(key string, value []byte, seq seqno.SeqNo) error) error {
	mem := make([]string, 0, len(v.mem))
	for k := range v.mem {
		mem = append(mem, k)
	}
	slices.Sort(mem)
	emit := func(op *Op) error {
		if op.Kind == OpDelete {
			return nil
		}
		return fn(op.Key, op.Value, op.SeqNo)
	}
	// flushMem emits the memtable's keys that sort before key (all when
	// key is nil).
	flushMem := func(key *string) error {
		for len(mem) > 0 && (key == nil || mem[0] < *key) {
			if err := emit(v.mem[mem[0]]); err != nil {
				return err
			}
			mem = mem[1:]
		}
		return nil
	}
	bufSize := max(16<<10, min(1<<20, (32<<20)/max(1, len(v.segs))))
	err := mergeIterate(v.segs, bufSize, func(op *Op) error {
		if err := flushMem(&op.Key); err != nil {
			return err
		}
		if len(mem) > 0 && mem[0] == op.Key {
			m := v.mem[mem[0]]
			mem = mem[1:]
			if newer(m, op) {
				return emit(m)
			}
		}
		return emit(op)
	})
	if err != nil {
		return err
	}
	return flushMem(nil)
}

// winner locates the newest version of a key found so far.
type winner struct {
	seq     seqno.SeqNo
	seg     int32 // index into segments, -1 for the memtable
	deleted bool
	off     int64
}

// scanBySegment resolves the newest version of every key one segment at a
// time (so at most one segment file is open: a shard may hold more segments
// than the process may open files), then reads the live values in key
// order.
func (v view) scanBySegment(fn func(key string, value []byte, seq seqno.SeqNo) error) error {
	wins := make(map[string]winner, len(v.mem))
	for i, seg := range v.segs {
		err := seg.iterate(64<<10, func(e *Op, off int64) error {
			if w, ok := wins[e.Key]; !ok || e.SeqNo > w.seq {
				wins[e.Key] = winner{seq: e.SeqNo, seg: int32(i), deleted: e.Kind == OpDelete, off: off}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for k, op := range v.mem {
		if w, ok := wins[k]; !ok || op.SeqNo > w.seq {
			wins[k] = winner{seq: op.SeqNo, seg: -1, deleted: op.Kind == OpDelete}
		}
	}
	keys := make([]string, 0, len(wins))
	for k, w := range wins {
		if !w.deleted {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	files := make(map[int32]*os.File)
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var e Op
	for _, k := range keys {
		w := wins[k]
		if w.seg < 0 {
			if err := fn(k, v.mem[k].Value, w.seq); err != nil {
				return err
			}
			continue
		}
		f := files[w.seg]
		if f == nil {
			if len(files) >= 256 {
				for i, of := range files {
					of.Close()
					delete(files, i)
				}
			}
			var err error
			if f, err = os.Open(v.segs[w.seg].path); err != nil {
				return fmt.Errorf("shardstore: scan: %w", err)
			}
			files[w.seg] = f
		}
		if err := readEntryAt(f, w.off, &e); err != nil {
			return readFailure(err, "segment %s at %d", v.segs[w.seg].meta.Name, w.off)
		}
		if err := fn(k, e.Value, w.seq); err != nil {
			return err
		}
	}
	return nil
}

// ReadOps calls fn for every op with a seqno in r, in seqno order. It fails
// with seqno.ErrCompacted when r starts below what the op log retains, with
// engine.ErrOutOfRange when it ends past the max seqno, and with
// engine.ErrInvalidArgument for a negative or inverted range. Seqnos in r
// that were never processed (gaps above the checkpoint) are simply absent.
func (s *Shard) ReadOps(r seqno.Range, fn func(Op) error) error {
	return s.readOps("", r, fn)
}

// ReadOpsOf is ReadOps for a reader that expects the copy's history to be
// history: a copy of another history answers engine.ErrHistoryMismatch,
// checked under the lock that fixes the op log read, so that ops of
// another history (a publish that replaced the content) are never sent as
// this one's.
func (s *Shard) ReadOpsOf(history string, r seqno.Range, fn func(Op) error) error {
	if history == "" {
		return fmt.Errorf("%w: no history UUID expected: ops are only exchanged within one history", engine.ErrInvalidArgument)
	}
	return s.readOps(history, r, fn)
}

func (s *Shard) readOps(history string, r seqno.Range, fn func(Op) error) error {
	s.touch()
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%w: %w", engine.ErrInvalidArgument, err)
	}
	s.mu.RLock()
	floor, maxSeq, closed, own, oplog := s.leases.Floor(), s.tracker.MaxSeqNo(), s.closed, s.history, s.oplog
	s.mu.RUnlock()
	switch {
	case closed:
		return ErrClosed
	case history != "" && own != history:
		return fmt.Errorf("%w: shard %s has history %s, the reader expects %s: copies of different histories never exchange ops",
			engine.ErrHistoryMismatch, s.id, own, history)
	case r.Empty():
		return nil
	case r.From < floor:
		return fmt.Errorf("%w: ops from %v asked, %s retains from %v", seqno.ErrCompacted, r.From, s.id, floor)
	case r.To > maxSeq:
		return fmt.Errorf("%w: ops up to %v asked, %s has seen only up to %v", engine.ErrOutOfRange, r.To, s.id, maxSeq)
	}
	return oplog.read(r, func(op *Op) error { return fn(*op) })
}
