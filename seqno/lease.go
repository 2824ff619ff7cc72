package seqno

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/recoverd/recoverd/internal/fsutil"
)

// RetentionLease asks a shard to keep every op at or above RetainingSeqNo.
type RetentionLease struct {
	ID             string    `json:"id"`
	RetainingSeqNo SeqNo     `json:"retaining_seqno"`
	Source         string    `json:"source"`
	Timestamp      time.Time `json:"timestamp"`
	// Holder is the authenticated identity that took the lease through
	// the peer API (a node id); only it may renew or release the lease.
	// Empty for a lease taken without authentication.
	Holder string `json:"holder,omitempty"`
	// TTL, when set, is this lease's own lifetime without renewal, in
	// place of the set's (a copy's lease, Leases.Replace, lives for the
	// copy retention period). Zero: the set's TTL.
	TTL time.Duration `json:"ttl,omitempty"`
}

var (
	// ErrLeaseExists is returned by Add for an id already held.
	ErrLeaseExists = errors.New("seqno: retention lease already exists")
	// ErrNotHolder is returned when a caller renews or releases a lease
	// another holder took.
	ErrNotHolder = errors.New("seqno: retention lease held by another holder")
	// ErrTooManyLeases is returned by AddHeld when the holder already
	// holds as many leases on the shard as allowed.
	ErrTooManyLeases = errors.New("seqno: too many retention leases for one holder")
)

// Leases is the durable set of retention leases of one shard. Every change
// is written to its file before the call returns. It is safe for concurrent
// use.
type Leases struct {
	mu     sync.Mutex
	path   string
	ttl    time.Duration
	now    func() time.Time
	leases map[string]RetentionLease
	// floor is the lowest seqno the shard still retains: a lease below it
	// would promise history that is already gone. It lives here, under the
	// same lock as the leases, so that taking a lease and advancing the
	// floor cannot interleave.
	floor SeqNo
}

// LeaseOptions configure a lease set.
type LeaseOptions struct {
	TTL time.Duration // a lease not renewed for this long expires
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Floor is the lowest retained seqno when the set is opened.
	Floor SeqNo
}

type leaseFile struct {
	Version int              `json:"version"`
	Leases  []RetentionLease `json:"leases"`
}

// OpenLeases loads the lease set stored at path (none yet is an empty set).
// A file that cannot be parsed is an error, never an empty set: forgetting
// leases would let retained history be discarded.
func OpenLeases(path string, opts LeaseOptions) (*Leases, error) {
	if opts.TTL <= 0 {
		return nil, fmt.Errorf("seqno: lease TTL must be positive, got %v", opts.TTL)
	}
	l := &Leases{path: path, ttl: opts.TTL, now: opts.Now, floor: opts.Floor, leases: map[string]RetentionLease{}}
	if l.now == nil {
		l.now = time.Now
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("seqno: read leases: %w", err)
	}
	var f leaseFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("seqno: leases file %s is corrupt: %w", path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("seqno: leases file %s has unknown version %d", path, f.Version)
	}
	for _, le := range f.Leases {
		l.leases[le.ID] = le
	}
	return l, nil
}

func (l *Leases) persistLocked() error {
	f := leaseFile{Version: 1, Leases: l.listLocked()}
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("seqno: encode leases: %w", err)
	}
	return fsutil.WriteFileAtomic(l.path, data, 0o644)
}

func (l *Leases) listLocked() []RetentionLease {
	out := make([]RetentionLease, 0, len(l.leases))
	for _, le := range l.leases {
		out = append(out, le)
	}
	slices.SortFunc(out, func(a, b RetentionLease) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

func (l *Leases) expiredLocked(le RetentionLease) bool {
	return l.now().Sub(le.Timestamp) > l.ttlOf(le)
}

// ttlOf is the lifetime of le: its own TTL, else the set's.
func (l *Leases) ttlOf(le RetentionLease) time.Duration {
	if le.TTL > 0 {
		return le.TTL
	}
	return l.ttl
}

// Add takes a new lease retaining ops from retaining on. It fails with
// ErrCompacted when those ops are already gone.
func (l *Leases) Add(id string, retaining SeqNo, source string) (RetentionLease, error) {
	if id == "" {
		return RetentionLease{}, errors.New("seqno: lease id must not be empty")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addLocked(id, retaining, source, "")
}

func (l *Leases) addLocked(id string, retaining SeqNo, source, holder string) (RetentionLease, error) {
	if old, ok := l.leases[id]; ok && !l.expiredLocked(old) {
		return RetentionLease{}, fmt.Errorf("%w: %s", ErrLeaseExists, id)
	}
	if f := l.floor; retaining < f {
		return RetentionLease{}, fmt.Errorf("%w: lease %s wants ops from %v, retained from %v", ErrCompacted, id, retaining, f)
	}
	le := RetentionLease{ID: id, RetainingSeqNo: retaining, Source: source, Timestamp: l.now(), Holder: holder}
	prev, had := l.leases[id]
	l.leases[id] = le
	if err := l.persistLocked(); err != nil {
		delete(l.leases, id)
		if had {
			l.leases[id] = prev
		}
		return RetentionLease{}, err
	}
	return le, nil
}

// AddHeld is Add for a holder: the lease records it, and the holder may
// hold at most max live leases of the set (max <= 0: no bound). A lease
// whose id is taken but expired is replaced, whoever held it.
func (l *Leases) AddHeld(id string, retaining SeqNo, source, holder string, max int) (RetentionLease, error) {
	if id == "" {
		return RetentionLease{}, errors.New("seqno: lease id must not be empty")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if max > 0 {
		n := 0
		for _, le := range l.leases {
			if le.Holder == holder && le.ID != id && !l.expiredLocked(le) {
				n++
			}
		}
		if n >= max {
			return RetentionLease{}, fmt.Errorf("%w: %q holds %d leases here, the most one holder may", ErrTooManyLeases, holder, n)
		}
	}
	return l.addLocked(id, retaining, source, holder)
}

// RenewHeld is Renew for a holder: a live lease another holder took
// answers ErrNotHolder and is left as it is.
func (l *Leases) RenewHeld(id, holder string, retaining SeqNo) (RetentionLease, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if le, ok := l.leases[id]; ok && le.Holder != holder && !l.expiredLocked(le) {
		return RetentionLease{}, fmt.Errorf("%w: lease %s", ErrNotHolder, id)
	}
	return l.renewLocked(id, retaining)
}

// RemoveHeld is Remove for a holder: a live lease another holder took
// answers ErrNotHolder and stays. An expired one may be removed by anyone.
func (l *Leases) RemoveHeld(id, holder string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if le, ok := l.leases[id]; ok && le.Holder != holder && !l.expiredLocked(le) {
		return fmt.Errorf("%w: lease %s", ErrNotHolder, id)
	}
	return l.removeLocked(id)
}

// Renew refreshes a lease's timestamp and may raise its retaining seqno (never
// lower it). An expired or unknown lease answers ErrLeaseLost.
func (l *Leases) Renew(id string, retaining SeqNo) (RetentionLease, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewLocked(id, retaining)
}

func (l *Leases) renewLocked(id string, retaining SeqNo) (RetentionLease, error) {
	le, ok := l.leases[id]
	if !ok {
		return RetentionLease{}, fmt.Errorf("%w: %s is not held", ErrLeaseLost, id)
	}
	if l.expiredLocked(le) {
		delete(l.leases, id)
		err := l.persistLocked()
		return RetentionLease{}, errors.Join(fmt.Errorf("%w: %s expired at %v", ErrLeaseLost, id, le.Timestamp.Add(l.ttlOf(le))), err)
	}
	if retaining < le.RetainingSeqNo {
		return RetentionLease{}, fmt.Errorf("seqno: lease %s cannot move back from %v to %v", id, le.RetainingSeqNo, retaining)
	}
	prev := le
	le.RetainingSeqNo = retaining
	le.Timestamp = l.now()
	l.leases[id] = le
	if err := l.persistLocked(); err != nil {
		l.leases[id] = prev
		return RetentionLease{}, err
	}
	return le, nil
}

// Remove releases a lease; removing an unknown lease is not an error.
func (l *Leases) Remove(id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.removeLocked(id)
}

func (l *Leases) removeLocked(id string) error {
	prev, ok := l.leases[id]
	if !ok {
		return nil
	}
	delete(l.leases, id)
	if err := l.persistLocked(); err != nil {
		l.leases[id] = prev
		return err
	}
	return nil
}

// Expire removes every lease older than the TTL and returns them.
func (l *Leases) Expire() ([]RetentionLease, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var gone []RetentionLease
	for id, le := range l.leases {
		if l.expiredLocked(le) {
			gone = append(gone, le)
			delete(l.leases, id)
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	if err := l.persistLocked(); err != nil {
		for _, le := range gone {
			l.leases[le.ID] = le
		}
		return nil, err
	}
	return gone, nil
}

// MinRetainingSeqNo is the lowest retaining seqno among live leases; ok is
// false when no live lease exists.
func (l *Leases) MinRetainingSeqNo() (s SeqNo, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, le := range l.leases {
		if l.expiredLocked(le) {
			continue
		}
		if !ok || le.RetainingSeqNo < s {
			s, ok = le.RetainingSeqNo, true
		}
	}
	return s, ok
}

// List returns the live leases, ordered by id.
func (l *Leases) List() []RetentionLease {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.listLocked()
	return slices.DeleteFunc(out, l.expiredLocked)
}

// TTL is how long a lease lives without renewal.
func (l *Leases) TTL() time.Duration { return l.ttl }

// Floor is the lowest seqno still retained.
func (l *Leases) Floor() SeqNo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.floor
}

// AdvanceFloor moves the floor up towards want, but never above the lowest
// live lease and never down; it returns the new floor.
func (l *Leases) AdvanceFloor(want SeqNo) SeqNo {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, le := range l.leases {
		if !l.expiredLocked(le) {
			want = min(want, le.RetainingSeqNo)
		}
	}
	l.floor = max(l.floor, want)
	return l.floor
}

// ResetFloor sets the floor when the shard starts a new op history (after a
// file-based recovery), which may lie below the old one.
func (l *Leases) ResetFloor(f SeqNo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.floor = f
}
