package transfer

import (
	"sync"
	"time"
)

// Adaptive compression. Compressing a chunk pays when compressing it,
// sending the compressed form and decompressing it on the target takes
// less time than sending it raw:
//
//	n/zstdRate + n·ratio/linkRate < n/linkRate  ⟺  linkRate < zstdRate·(1 − ratio)
//
// where zstdRate is the source's compression speed (raw bytes per second
// of one stream's wall time, so a busy CPU counts) discounted for the
// target's decompression (zstd decompresses about 3x faster than it
// compresses at this level: decompressShare), ratio the compressed size
// over the raw size, and linkRate the bytes per second raw messages leave
// a stream at: the time from the budget wait to the end of Send, which
// blocks while the stream's data waits for the socket or the flow-control
// window, so it measures the slowest of the network, the source's
// throttle and the target's consumption. Each pin keeps its estimates
// (one pin is one recovery, one target, one link). On loopback (GB/s) raw
// wins unless the data compresses to almost nothing; behind a 200 Mbit/s
// link text-like data (ratio ~0.23 at a few hundred MB/s) compresses.
//
// The estimates come from what the streams do: chunks sent raw measure the
// link, chunks compressed measure zstd. A probe chunk does the other
// thing: a compression try while the model says raw, a raw send while it
// says compress, so both estimates stay current (a link that slows down,
// data that starts compressing). The compression try compresses only the
// chunk's first probeSampleLen bytes and the chunk goes raw: a whole
// compressed chunk also cost the target a decompression and both ends a
// fresh buffer, which made text on loopback 0.88x to 0.90x as fast as
// with compression off (bench case 6) where the probes alone should cost
// about 1%. The pin's first chunk probes, then one in
// probeEvery of its chunks (across its streams); each probe that leaves the
// decision as it was doubles the interval, up to maxProbeEvery, and one
// that changes it brings it back to probeEvery. Probing every 16th chunk
// for good cost text on loopback 7% of its throughput (bench case 6, zstd
// on against off); at a 256th it is under 1%, and a change of link or
// data is still seen within 256 MiB.
const (
	probeEvery    = 16
	maxProbeEvery = 256
	// probeSampleLen is how much of a probe chunk is compressed to measure
	// zstd's speed and ratio. A compression has a fixed cost besides its
	// bytes (its state's reset, an output buffer): a smaller sample makes
	// zstd look slower than on a whole chunk.
	probeSampleLen = 256 << 10
	// decay weighs the past against a new sample: the sums below keep
	// about the last 1/(1−decay) = 8 samples.
	decay = 0.875
	// minSendTime: a Send quicker than this did not wait for the link (the
	// window had room); its sample would only say "fast".
	minSendTime = 50 * time.Microsecond
	// decompressShare: compression plus the target's decompression take
	// 1/zstdRate + 1/(3·zstdRate) = 1/(0.75·zstdRate).
	decompressShare = 0.75
)

// compressModel holds a pin's estimates. Its zero value knows nothing
// and says raw.
type compressModel struct {
	mu sync.Mutex
	// linkBytes/linkTime: wire bytes and the time they took, decayed.
	linkBytes, linkTime float64
	// zstdRaw/zstdTime/zstdOut: raw bytes compressed, the time it took
	// and the bytes it produced, decayed.
	zstdRaw, zstdTime, zstdOut float64
	// chunks counts the pin's chunks; the last probe was chunk lastProbe,
	// the next is chunk nextProbe, interval chunks after it (0: probeEvery).
	chunks, lastProbe, nextProbe, interval int64
	// lastDecision is the decision after the last probe.
	lastDecision bool
}

// probeNow counts a chunk and says whether it probes.
func (m *compressModel) probeNow() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.chunks
	m.chunks++
	if n < m.nextProbe {
		return false
	}
	if m.interval == 0 {
		m.interval = probeEvery
	}
	m.lastProbe, m.nextProbe = n, n+m.interval
	return true
}

// probed adapts the probing interval once a probe's sample is recorded:
// decided is what the model said before it. The decision held if the
// probe did not change it and it is the one the last probe left.
func (m *compressModel) probed(decided bool) {
	now := m.worthIt()
	m.mu.Lock()
	defer m.mu.Unlock()
	same := now == decided && decided == m.lastDecision
	m.lastDecision = now
	if same {
		m.interval = min(2*m.interval, maxProbeEvery)
	} else {
		m.interval = probeEvery
		m.nextProbe = m.lastProbe + probeEvery
	}
}

// sent records a raw message of wire bytes that took d from the budget
// wait to the end of Send.
func (m *compressModel) sent(wire int, d time.Duration) {
	d = max(d, minSendTime)
	m.mu.Lock()
	m.linkBytes = m.linkBytes*decay + float64(wire)
	m.linkTime = m.linkTime*decay + d.Seconds()
	m.mu.Unlock()
}

// compressed records raw bytes compressed to out bytes in d (out =
// raw for data that did not compress enough).
func (m *compressModel) compressed(raw, out int, d time.Duration) {
	m.mu.Lock()
	m.zstdRaw = m.zstdRaw*decay + float64(raw)
	m.zstdTime = m.zstdTime*decay + max(d, time.Microsecond).Seconds()
	m.zstdOut = m.zstdOut*decay + float64(out)
	m.mu.Unlock()
}

// rates returns the link's and zstd's bytes per second and the
// compression ratio; zero when not measured yet.
func (m *compressModel) rates() (link, zstd, ratio float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.linkTime > 0 {
		link = m.linkBytes / m.linkTime
	}
	if m.zstdTime > 0 && m.zstdRaw > 0 {
		zstd, ratio = m.zstdRaw/m.zstdTime, m.zstdOut/m.zstdRaw
	}
	return link, zstd, ratio
}

// worthIt says whether the next chunk should be compressed: only once both
// speeds are measured and the link is the slower side.
func (m *compressModel) worthIt() bool {
	link, zstd, ratio := m.rates()
	return link > 0 && zstd > 0 && ratio < 1 && link < zstd*decompressShare*(1-ratio)
}
