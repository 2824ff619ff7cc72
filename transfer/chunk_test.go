package transfer

import (
	"errors"
	"strings"
	"testing"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

func TestChunkDataRejects(t *testing.T) {
	data := []byte(strings.Repeat("recoverd ", 1000))
	good := func() *pb.FileChunk {
		return &pb.FileChunk{Offset: 100, Data: data, Crc32C: CRC32C(data), UncompressedLength: uint32(len(data)), Compression: pb.Compression_COMPRESSION_NONE}
	}
	if _, err := chunkData(good(), 100, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*pb.FileChunk){
		"offset":      func(c *pb.FileChunk) { c.Offset = 0 },
		"crc":         func(c *pb.FileChunk) { c.Crc32C++ },
		"length":      func(c *pb.FileChunk) { c.UncompressedLength-- },
		"zero length": func(c *pb.FileChunk) { c.UncompressedLength, c.Data = 0, nil },
		"too long":    func(c *pb.FileChunk) { c.UncompressedLength = MaxChunkSize + 1 },
		"compression": func(c *pb.FileChunk) { c.Compression = 99 },
		"bad zstd":    func(c *pb.FileChunk) { c.Compression = pb.Compression_COMPRESSION_ZSTD },
		"zstd bomb": func(c *pb.FileChunk) {
			big := make([]byte, MaxChunkSize)
			c.Data, c.Compression = compressInto(big, nil), pb.Compression_COMPRESSION_ZSTD
		},
	} {
		ch := good()
		mut(ch)
		if _, err := chunkData(ch, 100, int64(len(data))); !errors.Is(err, ErrChunkCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
