package seqno

import "time"

// EarliestExpiry returns when the live lease that expires first will
// expire unless it is renewed (its timestamp plus the TTL), and false when
// no lease is live. A holder that renews its lease at a third of the TTL
// keeps this at least two thirds of the TTL away; closer means renewals
// are being missed.
func (l *Leases) EarliestExpiry() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	found := false
	for _, le := range l.leases {
		if l.expiredLocked(le) {
			continue
		}
		if at := le.Timestamp.Add(l.ttlOf(le)); !found || at.Before(first) {
			first, found = at, true
		}
	}
	return first, found
}

// Held is how many leases are recorded, live or expired but not yet
// removed (Expire): a shard holding any stays open for the sweep that
// expires them.
func (l *Leases) Held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.leases)
}
