package main

// timed is what a timeHeap orders: a time, and a sequence number that keeps
// equal times in the order they were added.
type timed interface{ at() (float64, uint64) }

// timeHeap is a binary min-heap by (t, seq). container/heap would box every
// element in an interface on push and pop, an allocation per event in the
// simulator's hottest loop; this generic one allocates only when it grows.
type timeHeap[T timed] []T

func (h timeHeap[T]) less(i, j int) bool {
	ti, si := h[i].at()
	tj, sj := h[j].at()
	if ti != tj {
		return ti < tj
	}
	return si < sj
}

func (h *timeHeap[T]) push(x T) {
	*h = append(*h, x)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *timeHeap[T]) pop() T {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s.less(l, m) {
			m = l
		}
		if r < n && s.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
