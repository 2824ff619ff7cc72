package transfer

import (
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/klauspost/compress/zstd"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// Chunk sizes. A chunk is the unit of checksumming, compression, throttling
// and resumption: a cut stream loses at most the chunk in flight.
const (
	// DefaultChunkSize is the raw bytes per chunk when the client asks for
	// none: large enough that per-message overhead (framing, a CRC, a
	// syscall or two, a zstd frame header) is well under 0.1%, small enough
	// that a resume re-sends little and a 4 MiB stream window holds several.
	DefaultChunkSize = 1 << 20
	// MinChunkSize and MaxChunkSize bound what a client may ask for.
	MinChunkSize = 64 << 10
	MaxChunkSize = 4 << 20
)

// Compression heuristics.
const (
	// compressRatioLimit: a chunk is sent compressed only when zstd brings it
	// to at most 90% of its raw size; otherwise the CPU on both ends buys
	// too little. The first chunk of a stream that misses switches
	// compression off for the rest of that stream (segment data is
	// homogeneous: a file whose first chunk does not compress is values
	// that are already compressed or random).
	compressRatioNum, compressRatioDen = 9, 10
	// minCompressLen: smaller chunks (a file's tail) are sent raw.
	minCompressLen = 4 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// chunkBufs pools the source's chunk buffers: a
// fresh buffer per chunk cost the allocator's zeroing of every byte sent
// (memclr was 6-20% of the daemons' CPU) and garbage collections.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, DefaultChunkSize); return &b }}

// getChunkBuf returns a pooled buffer of at least n bytes.
func getChunkBuf(n int) *[]byte {
	b := chunkBufs.Get().(*[]byte)
	if cap(*b) < n {
		*b = make([]byte, n)
	}
	*b = (*b)[:cap(*b)]
	return b
}

func putChunkBuf(b *[]byte) { chunkBufs.Put(b) }

// CRC32C is the CRC-32 Castagnoli of b (hardware accelerated on amd64 and
// arm64), the checksum of chunks and of files.
func CRC32C(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

var (
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
	zstdErr  error
)

// codecs returns the process-wide zstd encoder and decoder. Both are used
// only through EncodeAll / DecodeAll, which are safe for concurrent use and
// start no goroutines. The encoder runs at SpeedFastest (several hundred
// MB/s per core: compression must not become the bottleneck on a busy
// primary) without zstd's own frame checksum (every chunk has a CRC32C).
// The decoder never produces more than the chunk's declared length.
func codecs() (*zstd.Encoder, *zstd.Decoder, error) {
	zstdOnce.Do(func() {
		zstdEnc, zstdErr = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false),
			zstd.WithEncoderConcurrency(4), zstd.WithZeroFrames(true))
		if zstdErr != nil {
			return
		}
		zstdDec, zstdErr = zstd.NewReader(nil, zstd.WithDecoderConcurrency(4), zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderMaxMemory(MaxChunkSize))
	})
	return zstdEnc, zstdDec, zstdErr
}

// compressChunk returns raw compressed with zstd when that saves enough,
// or nil.
func compressChunk(raw []byte) []byte {
	if len(raw) < minCompressLen {
		return nil
	}
	enc, _, err := codecs()
	if err != nil {
		return nil
	}
	limit := len(raw) * compressRatioNum / compressRatioDen
	out := enc.EncodeAll(raw, make([]byte, 0, limit+64))
	if len(out) > limit {
		return nil
	}
	return out
}

// chunkData checks a received chunk against the offset expected and the
// bytes still wanted and returns its raw bytes. Every failure wraps
// ErrChunkCorrupt.
func chunkData(ch *pb.FileChunk, wantOff, remaining int64) ([]byte, error) {
	if ch.Offset != wantOff {
		return nil, fmt.Errorf("%w: chunk at offset %d, expected %d", ErrChunkCorrupt, ch.Offset, wantOff)
	}
	n := int64(ch.UncompressedLength)
	if n == 0 || n > remaining || n > MaxChunkSize {
		return nil, fmt.Errorf("%w: chunk at %d declares %d bytes, %d remain (at most %d per chunk)", ErrChunkCorrupt, ch.Offset, n, remaining, MaxChunkSize)
	}
	var data []byte
	switch ch.Compression {
	case pb.Compression_COMPRESSION_NONE, pb.Compression_COMPRESSION_UNSPECIFIED:
		data = ch.Data
	case pb.Compression_COMPRESSION_ZSTD:
		_, dec, err := codecs()
		if err != nil {
			return nil, err
		}
		data, err = dec.DecodeAll(ch.Data, make([]byte, 0, n))
		if err != nil {
			return nil, fmt.Errorf("%w: chunk at %d does not decompress: %v", ErrChunkCorrupt, ch.Offset, err)
		}
	default:
		return nil, fmt.Errorf("%w: chunk at %d has unknown compression %v", ErrChunkCorrupt, ch.Offset, ch.Compression)
	}
	if int64(len(data)) != n {
		return nil, fmt.Errorf("%w: chunk at %d holds %d bytes, declares %d", ErrChunkCorrupt, ch.Offset, len(data), n)
	}
	if got := CRC32C(data); got != ch.Crc32C {
		return nil, fmt.Errorf("%w: chunk at %d has CRC32C %08x, header says %08x", ErrChunkCorrupt, ch.Offset, got, ch.Crc32C)
	}
	return data, nil
}
