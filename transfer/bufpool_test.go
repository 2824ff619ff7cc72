package transfer

import (
	"slices"
	"testing"
)

// TestBufferPoolTiers: the tiers ascend, a chunk message of every chunk
// size fits one without the next size up, buffers come back at their
// length and are reused, and a foreign buffer is not taken.
func TestBufferPoolTiers(t *testing.T) {
	p := bufferPool.(*tieredPool)
	if !slices.IsSorted(p.sizes) {
		t.Fatalf("tiers %v are not ascending", p.sizes)
	}
	for _, n := range []int{MinChunkSize, 1 << 20, MaxChunkSize} {
		b := p.Get(n + 64)
		if len(*b) != n+64 || cap(*b) > n+chunkSlack {
			t.Fatalf("a %d-byte message got len %d cap %d", n+64, len(*b), cap(*b))
		}
		p.Put(b)
	}
	b := p.Get(100 << 10)
	(*b)[0] = 7
	p.Put(b)
	for range 10 { // sync.Pool may drop it; it must not hand out another size
		if c := p.Get(100 << 10); cap(*c) != 128<<10+chunkSlack {
			t.Fatalf("cap %d for 100 KiB", cap(*c))
		}
	}
	foreign := make([]byte, 1000)
	p.Put(&foreign) // ignored, not a tier's size
	if big := p.Get(MaxChunkSize + chunkSlack + 1); len(*big) != MaxChunkSize+chunkSlack+1 {
		t.Fatal("a buffer above the tiers has the wrong length")
	}
}
