package transfer

import (
	"fmt"
	"testing"
	"time"
)

// TestCompressModel: compression is chosen from the measured link and
// zstd speeds, not from the ratio alone.
func TestCompressModel(t *testing.T) {
	const mb = 1e6
	for _, tc := range []struct {
		name              string
		link, zstd, ratio float64 // MB/s, MB/s, out/in
		want              bool
	}{
		{"nothing measured", 0, 0, 0, false},
		{"loopback, text", 1500, 220, 0.23, false},
		{"200 Mbit/s, text", 25, 220, 0.23, true},
		{"200 Mbit/s, text, zstd slowed by a busy CPU", 25, 50, 0.23, true},
		{"200 Mbit/s, text, zstd slower than the link", 25, 20, 0.23, false},
		{"200 Mbit/s, hardly compressible", 25, 220, 0.95, false},
		{"10 Mbit/s, hardly compressible", 1.25, 220, 0.95, true},
		{"link unknown", 0, 220, 0.23, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &compressModel{}
			if tc.link > 0 {
				m.sent(int(tc.link*mb), time.Second)
			}
			if tc.zstd > 0 {
				m.compressed(int(tc.zstd*mb), int(tc.zstd*mb*tc.ratio), time.Second)
			}
			if got := m.worthIt(); got != tc.want {
				link, zstd, ratio := m.rates()
				t.Fatalf("worthIt = %v with link %.0f B/s, zstd %.0f B/s, ratio %.2f; want %v", got, link, zstd, ratio, tc.want)
			}
		})
	}
}

// TestProbesBackOffWhileTheDecisionHolds: the pin's first chunk probes,
// then every probeEvery-th; each probe that confirms the decision doubles
// the interval up to maxProbeEvery, and one that changes it brings it back.
func TestProbesBackOffWhileTheDecisionHolds(t *testing.T) {
	m := &compressModel{}
	m.sent(100<<20, time.Millisecond) // a fast link: raw
	m.compressed(1<<20, 300<<10, 5*time.Millisecond)
	var probes []int64
	run := func(chunks int) {
		for range chunks {
			decided := m.worthIt()
			if m.probeNow() {
				probes = append(probes, m.chunks-1)
				m.probed(decided)
			}
		}
	}
	run(1000)
	want := []int64{0, 16, 48, 112, 240, 496, 752}
	if fmt.Sprint(probes) != fmt.Sprint(want) {
		t.Fatalf("probes at %v, want %v", probes, want)
	}
	// The link slows down: the next probe's sample changes the decision,
	// and probing is frequent again.
	for range 20 {
		m.sent(10e3, time.Second)
	}
	probes = nil
	run(300)
	if len(probes) < 2 || probes[1]-probes[0] != probeEvery {
		t.Fatalf("after a change of decision, probes at %v: want the interval back at %d", probes, probeEvery)
	}
}
