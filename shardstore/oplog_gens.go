package shardstore

import (
	"errors"
	"os"

	"github.com/recoverd/recoverd/internal/fsutil"
	"github.com/recoverd/recoverd/seqno"
)

// The op log's generations: rolling to a new one, holding the ones a
// reader or a lease needs, dropping the others.

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
	var err error
	if l.f != nil {
		if err = l.flushLocked(); err == nil {
			err = l.fsync(l.f)
		}
	}
	if err != nil {
		return l.cutBackLocked(err)
	}
	l.synced = l.appended
	if err := l.releaseLocked(); err != nil {
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

// held reports whether a reader holds ops of the log (hold).
func (l *opLog) held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.holds) > 0
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
