package seqno

import (
	"errors"
	"fmt"
	"time"
)

// Replace turns the live lease oldID, held by oldHolder, into the lease
// next in one durable write: no instant, on disk or in memory, holds
// neither. next's timestamp is now; a zero next.TTL lives for the set's
// TTL. A lease with next's id already held (a copy handed over before) is
// replaced whoever held it. An unknown or expired oldID answers
// ErrLeaseLost, one another holder holds ErrNotHolder, a next retaining
// ops already gone ErrCompacted; the set is then left as it was.
func (l *Leases) Replace(oldID, oldHolder string, next RetentionLease) (RetentionLease, error) {
	if oldID == "" || next.ID == "" {
		return RetentionLease{}, errors.New("seqno: lease id must not be empty")
	}
	if next.TTL < 0 {
		return RetentionLease{}, fmt.Errorf("seqno: lease TTL must not be negative, got %v", next.TTL)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old, ok := l.leases[oldID]
	switch {
	case !ok:
		return RetentionLease{}, fmt.Errorf("%w: %s is not held", ErrLeaseLost, oldID)
	case l.expiredLocked(old):
		return RetentionLease{}, fmt.Errorf("%w: %s expired at %v", ErrLeaseLost, oldID, old.Timestamp.Add(l.ttlOf(old)))
	case old.Holder != oldHolder:
		return RetentionLease{}, fmt.Errorf("%w: lease %s", ErrNotHolder, oldID)
	case next.RetainingSeqNo < l.floor:
		return RetentionLease{}, fmt.Errorf("%w: lease %s wants ops from %v, retained from %v", ErrCompacted, next.ID, next.RetainingSeqNo, l.floor)
	}
	prev, had := l.leases[next.ID]
	next.Timestamp = l.now()
	delete(l.leases, oldID)
	l.leases[next.ID] = next
	if err := l.persistLocked(); err != nil {
		delete(l.leases, next.ID)
		if had {
			l.leases[next.ID] = prev
		}
		l.leases[oldID] = old
		return RetentionLease{}, err
	}
	return next, nil
}

// TTLOf is how long le lives without renewal in this set.
func (l *Leases) TTLOf(le RetentionLease) time.Duration { return l.ttlOf(le) }
