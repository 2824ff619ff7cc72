package staging

import (
	"errors"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/recoverd/recoverd/engine"
)

// TestMatchSumAcrossAResume: the running BLAKE3 sum follows bytes written in
// order, across a transfer that stops and resumes (another CreateFile of
// the same recovery); a wrong sum is corrupt; a match is remembered for a
// re-plan that finds the file staged; bytes written out of order, or cut
// off, leave nothing to compare.
func TestMatchSumAcrossAResume(t *testing.T) {
	a := open(t, t.TempDir())
	defer a.Close()
	f, data := file("seg_1", 3<<20+77, 1)
	want := blake3.Sum256(data)
	stage(t, a, f, data, 1<<20) // a cut stream: 1 MiB staged
	stage(t, a, f, data, f.Length)
	sf, err := a.CreateFile(f)
	if err != nil {
		t.Fatal(err)
	}
	bad := want
	bad[0] ^= 1
	if ok, err := sf.MatchSum(bad[:]); !errors.Is(err, engine.ErrCorrupt) || ok {
		t.Fatalf("a wrong sum: %v %v", ok, err)
	}
	if ok, err := sf.MatchSum(want[:]); !ok || err != nil {
		t.Fatalf("the file's own sum: %v %v", ok, err)
	}
	sf.Close()
	again, err := a.CreateFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := again.Matched(); !ok || got != Sum(want) {
		t.Fatal("a re-plan lost the matched sum")
	}
	// Cut back: the sum no longer covers the file, nor is it matched.
	if err := again.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	if _, ok := again.Matched(); ok {
		t.Fatal("a file cut short is still matched")
	}
	again.Close()

	g, gdata := file("seg_2", 1<<20, 2)
	sg, err := a.CreateFile(g)
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close()
	half := g.Length / 2
	for _, off := range []int64{half, 0} { // out of order
		end := min(off+half, g.Length)
		if _, err := sg.WriteAt(gdata[off:end], off); err != nil {
			t.Fatal(err)
		}
	}
	gsum := blake3.Sum256(gdata)
	if ok, err := sg.MatchSum(gsum[:]); ok || err != nil {
		t.Fatalf("a file written out of order has no running sum to compare: %v %v", ok, err)
	}
}
