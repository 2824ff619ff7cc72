package planner

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/recoverd/recoverd/shardstore"
)

func byName(a, b shardstore.FileMeta) int { return strings.Compare(a.Name, b.Name) }

// checkFiles returns the files in name order (the input itself when it is
// already sorted, a sorted copy otherwise) after checking every name is
// allowed, every length is not negative and no name is listed twice.
func checkFiles(files []shardstore.FileMeta) ([]shardstore.FileMeta, error) {
	sorted := files
	if !slices.IsSortedFunc(files, byName) {
		sorted = slices.Clone(files)
		slices.SortFunc(sorted, byName)
	}
	for i, f := range sorted {
		if err := shardstore.ValidateName(f.Name); err != nil {
			return nil, fmt.Errorf("it lists a file whose name is not allowed (%s)", strings.TrimPrefix(err.Error(), "shardstore: "))
		}
		if f.Length < 0 {
			return nil, fmt.Errorf("it lists file %s with a negative length %d", f.Name, f.Length)
		}
		if i > 0 && sorted[i-1].Name == f.Name {
			return nil, fmt.Errorf("it lists file %s twice", f.Name)
		}
	}
	return sorted, nil
}

// totalBytes sums file lengths, saturating at math.MaxInt64.
func totalBytes(files []shardstore.FileMeta) int64 {
	var n int64
	for _, f := range files {
		n = addSat(n, f.Length)
	}
	return n
}

// addSat adds two non-negative numbers, saturating at math.MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// mulSat multiplies two non-negative numbers, saturating at math.MaxInt64.
func mulSat(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

const (
	fromTarget = iota // identical on the target: reused
	fromRepo          // from the snapshot
	fromSource        // from the source node
)

// fileSplit is a file set split by where each file comes from.
type fileSplit struct {
	reused, fromSnap, fromPeer    []shardstore.FileMeta
	bytesReused, bytesSnap, bytes int64 // bytes: from the peer
}

// splitFiles splits set (sorted, unique) into the files identical on the
// target (reused), and the others: all from the repository when restFromRepo
// is set (the set is the snapshot's), otherwise from the repository when
// snap holds the same file and from the source when it does not. target and
// snap are sorted and unique; snap may be nil. The three lists share one
// backing array, each capped at its length.
func splitFiles(set, target, snap []shardstore.FileMeta, restFromRepo bool) fileSplit {
	class := make([]byte, len(set))
	var count [3]int
	ti, si := 0, 0
	for i, f := range set {
		for ti < len(target) && target[ti].Name < f.Name {
			ti++
		}
		c := byte(fromSource)
		switch {
		case ti < len(target) && target[ti].Name == f.Name && f.SameAs(target[ti]):
			c = fromTarget
		case restFromRepo:
			c = fromRepo
		default:
			for si < len(snap) && snap[si].Name < f.Name {
				si++
			}
			if si < len(snap) && snap[si].Name == f.Name && f.SameAs(snap[si]) {
				c = fromRepo
			}
		}
		class[i] = c
		count[c]++
	}
	buf := make([]shardstore.FileMeta, len(set))
	a, b := count[fromTarget], count[fromTarget]+count[fromRepo]
	s := fileSplit{reused: buf[:0:a], fromSnap: buf[a:a:b], fromPeer: buf[b:b:len(buf)]}
	for i, f := range set {
		switch class[i] {
		case fromTarget:
			s.reused = append(s.reused, f)
			s.bytesReused = addSat(s.bytesReused, f.Length)
		case fromRepo:
			s.fromSnap = append(s.fromSnap, f)
			s.bytesSnap = addSat(s.bytesSnap, f.Length)
		default:
			s.fromPeer = append(s.fromPeer, f)
			s.bytes = addSat(s.bytes, f.Length)
		}
	}
	return s
}

// anyIdentical reports whether some file of a is the same as the file of
// that name in b (both sorted).
func anyIdentical(a, b []shardstore.FileMeta) bool {
	j := 0
	for _, f := range a {
		for j < len(b) && b[j].Name < f.Name {
			j++
		}
		if j < len(b) && b[j].Name == f.Name && f.SameAs(b[j]) {
			return true
		}
	}
	return false
}
