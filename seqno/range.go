package seqno

import "fmt"

// Range is an inclusive range of seqnos [From, To]; it is empty when From > To.
type Range struct {
	From SeqNo `json:"from"`
	To   SeqNo `json:"to"`
}

// EmptyRange is the canonical empty range.
var EmptyRange = Range{From: 0, To: -1}

// Empty reports whether r holds no seqno.
func (r Range) Empty() bool { return r.From > r.To }

// Len is the number of seqnos in r.
func (r Range) Len() int64 {
	if r.Empty() {
		return 0
	}
	return int64(r.To-r.From) + 1
}

// Contains reports whether s lies in r.
func (r Range) Contains(s SeqNo) bool { return s >= r.From && s <= r.To }

// Covers reports whether every seqno of o lies in r; an empty o is covered.
func (r Range) Covers(o Range) bool {
	return o.Empty() || (!r.Empty() && o.From >= r.From && o.To <= r.To)
}

// Intersect returns the seqnos in both r and o.
func (r Range) Intersect(o Range) Range {
	out := Range{From: max(r.From, o.From), To: min(r.To, o.To)}
	if out.Empty() {
		return EmptyRange
	}
	return out
}

// Missing returns the parts of r not covered by have, in order (zero, one or
// two ranges).
func (r Range) Missing(have Range) []Range {
	if r.Empty() {
		return nil
	}
	in := r.Intersect(have)
	if in.Empty() {
		return []Range{r}
	}
	var out []Range
	if in.From > r.From {
		out = append(out, Range{From: r.From, To: in.From - 1})
	}
	if in.To < r.To {
		out = append(out, Range{From: in.To + 1, To: r.To})
	}
	return out
}

// Validate rejects ranges that no caller can mean: negative bounds or a
// range whose end lies before its start by more than one (From == To+1 is
// the empty range that follows To).
func (r Range) Validate() error {
	if r.From < 0 {
		return fmt.Errorf("seqno: range %v starts below 0", r)
	}
	if r.To < r.From-1 {
		return fmt.Errorf("seqno: range %v is inverted", r)
	}
	return nil
}

func (r Range) String() string {
	if r.Empty() {
		return "[]"
	}
	return fmt.Sprintf("[%d..%d]", r.From, r.To)
}
