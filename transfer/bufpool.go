package transfer

import (
	"sync"

	"google.golang.org/grpc/mem"
)

// bufferPool is the gRPC buffer pool of the peer connections, both sides
// (ServerOptions, DialOptions, chunkCodec). gRPC's default pool has tiers
// of 256 B, 4, 16 and 32 KiB and 1 MiB, clears a buffer's whole capacity
// on every Get, and allocates anything above 1 MiB afresh: a 1 MiB chunk
// message (1 MiB of data and a few bytes of header) was a new zeroed
// allocation on each side, and a 100 KiB one cleared a whole 1 MiB (bench
// case 2: memclr was 21% of the source's CPU). These tiers follow the
// chunk sizes, with room for the header, and a buffer is not cleared:
// every user of a buffer writes the length it asked for before reading it
// (a marshal fills it; a read is io.ReadFull).
var bufferPool mem.BufferPool = newTieredPool(4<<10, 16<<10, 32<<10, MinChunkSize+chunkSlack, 128<<10+chunkSlack,
	256<<10+chunkSlack, 512<<10+chunkSlack, 1<<20+chunkSlack, 2<<20+chunkSlack, MaxChunkSize+chunkSlack)

// chunkSlack is room for a FileChunk's fields besides its data, and for
// the shift that aligns the data (readAlignedChunk).
const chunkSlack = 8 << 10

type tieredPool struct {
	sizes []int
	pools []sync.Pool
}

// newTieredPool pools buffers of the given sizes, ascending.
func newTieredPool(sizes ...int) *tieredPool {
	return &tieredPool{sizes: sizes, pools: make([]sync.Pool, len(sizes))}
}

// tier is the index of the smallest size holding n, or len(sizes).
func (p *tieredPool) tier(n int) int {
	for i, s := range p.sizes {
		if n <= s {
			return i
		}
	}
	return len(p.sizes)
}

func (p *tieredPool) Get(length int) *[]byte {
	i := p.tier(length)
	if i == len(p.sizes) {
		b := make([]byte, length)
		return &b
	}
	if b, ok := p.pools[i].Get().(*[]byte); ok {
		*b = (*b)[:length]
		return b
	}
	b := make([]byte, length, p.sizes[i])
	return &b
}

func (p *tieredPool) Put(b *[]byte) {
	c := cap(*b)
	i := p.tier(c)
	if i == len(p.sizes) || p.sizes[i] != c { // not one of ours
		return
	}
	p.pools[i].Put(b)
}
