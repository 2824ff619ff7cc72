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
	// none: per-message overhead (framing, a CRC, a syscall or two, a zstd
	// frame header) is negligible, and a staged file is written with
	// O_DIRECT in writes the size of a chunk. 4 MiB chunks with 8 files in
	// flight ran bench case 1 at 1.2x the speed of 1 MiB with 4 (either
	// change alone bought nothing: bench/README.md). A resume re-sends at
	// most a chunk.
	DefaultChunkSize = 4 << 20
	// grpcChunkSize bounds chunks on a gRPC stream (the data connection
	// takes up to MaxChunkSize): gRPC's per-message buffers grow with the
	// message, and 4 MiB chunks took a source to 288 MiB.
	grpcChunkSize = 1 << 20
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

// The process-wide zstd encoder and decoder, made at their first use. Both
// are used only through EncodeAll / DecodeAll, which are safe for
// concurrent use and start no goroutines. The encoder runs at SpeedFastest
// (several hundred MB/s per core: compression must not become the
// bottleneck on a busy primary) without zstd's own frame checksum (every
// chunk has a CRC32C). The decoder never produces more than the chunk's
// declared length.
var (
	encoder = sync.OnceValues(func() (*zstd.Encoder, error) {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false),
			zstd.WithEncoderConcurrency(encoderStates), zstd.WithZeroFrames(true))
		if err == nil {
			warmUp(enc)
		}
		return enc, err
	})
	decoder = sync.OnceValues(func() (*zstd.Decoder, error) {
		return zstd.NewReader(nil, zstd.WithDecoderConcurrency(4), zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderMaxMemory(MaxChunkSize))
	})
)

// encoderStates is how many chunks may be compressed at once.
const encoderStates = 4

// warmUp has each of the encoder's states compress a chunk once. The first
// EncodeAll of a state builds its tables and history (36 ms for 128 KiB
// here, against under 1 ms once built), and the adaptive model would take
// that for zstd's speed: with the probes' samples (adaptive.go) the first
// one kept compression off behind a 25 MB/s link for half the transfer
// (bench case 6). 1 MiB each builds them; a whole 4 MiB chunk would only
// quadruple the wait.
func warmUp(enc *zstd.Encoder) {
	chunk := make([]byte, 1<<20)
	var wg sync.WaitGroup
	for range encoderStates {
		wg.Go(func() { enc.EncodeAll(chunk, make([]byte, 0, len(chunk))) })
	}
	wg.Wait()
}

// compressInto returns raw compressed with zstd when that saves enough,
// or nil. The output goes into dst when it has room (a pooled buffer: a
// fresh one per chunk cost page faults, which made zstd look slow to the
// adaptive model, and a zeroed allocation), else into a new buffer.
func compressInto(raw, dst []byte) []byte {
	if len(raw) < minCompressLen {
		return nil
	}
	enc, err := encoder()
	if err != nil {
		return nil
	}
	limit := len(raw) * compressRatioNum / compressRatioDen
	if cap(dst) < limit+64 {
		dst = make([]byte, 0, limit+64)
	}
	out := enc.EncodeAll(raw, dst[:0])
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
		dec, err := decoder()
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
