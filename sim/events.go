package main

import (
	"math"
	"slices"
)

// event is one control event: a recovery or a download place moving on.
type event struct {
	t    float64
	seq  uint64
	kind evKind
	a, b int32 // recovery, or node and slot
	gen  int32 // attempt or slot generation the event belongs to
}

// events is a min-heap of events by (t, seq).
type events = timeHeap[event]

func (ev event) at() (float64, uint64) { return ev.t, ev.seq }

// evQueue holds the control events: those due in the current step (a
// sorted batch, and a heap for the ones added meanwhile), a wheel of
// per-step buckets for the next wheelSize steps, and a heap beyond.
// Events come out in (t, seq) order within a step, and every event of a
// step before any of the next.
type evQueue struct {
	dt    float64
	cur   int64
	batch []event // sorted; batch[bi:] pending
	bi    int
	added events
	wheel [wheelSize][]event
	far   events
}

const wheelSize = 1024

func (q *evQueue) step(t float64) int64 { return int64(math.Floor(t / q.dt)) }

func (q *evQueue) push(ev event) {
	switch s := q.step(ev.t); {
	case s <= q.cur:
		q.added.push(ev)
	case s < q.cur+wheelSize:
		q.wheel[s%wheelSize] = append(q.wheel[s%wheelSize], ev)
	default:
		q.far.push(ev)
	}
}

func evLess(a, b *event) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	return a.seq < b.seq
}

// advance makes step k current; the current step's events must all have
// been taken.
func (q *evQueue) advance(k int64) {
	for q.cur < k {
		q.cur++
		for len(q.far) > 0 && q.step(q.far[0].t) < q.cur+wheelSize {
			ev := q.far.pop()
			q.push(ev)
		}
	}
	b := &q.wheel[q.cur%wheelSize]
	if len(*b) == 0 {
		return
	}
	// The bucket becomes the batch; the old batch's array is reused.
	q.batch, *b = *b, q.batch[:0]
	q.bi = 0
	slices.SortFunc(q.batch, func(a, b event) int {
		if evLess(&a, &b) {
			return -1
		}
		return 1
	})
}

// pending reports whether an event of the current step is left.
func (q *evQueue) pending() bool { return q.bi < len(q.batch) || len(q.added) > 0 }

func (q *evQueue) pop() event {
	if q.bi < len(q.batch) && (len(q.added) == 0 || evLess(&q.batch[q.bi], &q.added[0])) {
		q.bi++
		return q.batch[q.bi-1]
	}
	return q.added.pop()
}

// next is the first step holding an event, or -1.
func (q *evQueue) next() int64 {
	if q.pending() {
		return q.cur
	}
	for s := q.cur + 1; s < q.cur+wheelSize; s++ {
		if len(q.wheel[s%wheelSize]) > 0 {
			return s
		}
	}
	if len(q.far) > 0 {
		return q.step(q.far[0].t)
	}
	return -1
}

// fifo is a queue of recovery ids.
type fifo struct {
	items []int32
	head  int
}

func (q *fifo) push(r int32) { q.items = append(q.items, r) }
func (q *fifo) len() int     { return len(q.items) - q.head }
func (q *fifo) pop() int32 {
	r := q.items[q.head]
	q.head++
	if q.head > 1024 && q.head*2 > len(q.items) {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
	return r
}

type sleeper struct {
	t   float64
	seq uint64
	id  int32
}

type sleepHeap = timeHeap[sleeper]

func (sl sleeper) at() (float64, uint64) { return sl.t, sl.seq }
