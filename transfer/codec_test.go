package transfer

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// TestFileChunkFieldNumbers: parseFileChunk's field numbers are the
// generated descriptor's.
func TestFileChunkFieldNumbers(t *testing.T) {
	fields := (&pb.FileChunk{}).ProtoReflect().Descriptor().Fields()
	want := map[protoreflect.Name]protowire.Number{
		"offset": fcOffset, "data": fcData, "crc32c": fcCRC32C, "compression": fcCompression,
		"uncompressed_length": fcUncompressedLength, "file": fcFile, "file_sum": fcFileSum,
	}
	if fields.Len() != len(want) {
		t.Fatalf("FileChunk has %d fields, parseFileChunk knows %d", fields.Len(), len(want))
	}
	for name, num := range want {
		if f := fields.ByName(name); f == nil || f.Number() != num {
			t.Fatalf("field %s: descriptor %v, parseFileChunk %d", name, f, num)
		}
	}
}

// TestParseFileChunkAsProto: parseFileChunk decodes what proto.Marshal
// encodes as proto.Unmarshal does, skips unknown fields, aliases the data,
// and refuses a truncated message.
func TestParseFileChunkAsProto(t *testing.T) {
	in := &pb.FileChunk{Offset: 1 << 40, Data: []byte("chunk bytes"), Crc32C: 0xdeadbeef,
		Compression: pb.Compression_COMPRESSION_ZSTD, UncompressedLength: 4096, File: 7, FileSum: []byte("0123456789abcdef0123456789abcdef")}
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	b = protowire.AppendTag(b, 99, protowire.BytesType) // a field of a newer version
	b = protowire.AppendBytes(b, []byte("later"))
	got, err := parseFileChunk(b)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, in) {
		t.Fatalf("parsed %v, want %v", got, in)
	}
	if &got.Data[0] != &b[protowireDataOffset(t, b)] {
		t.Fatal("the data was copied, not aliased")
	}
	if _, err := parseFileChunk(b[:len(b)-3]); err == nil {
		t.Fatal("a truncated chunk parsed")
	}
}

// protowireDataOffset finds where the data field's bytes start in b.
func protowireDataOffset(t *testing.T, b []byte) int {
	off := 0
	for off < len(b) {
		num, typ, n := protowire.ConsumeTag(b[off:])
		off += n
		if num == fcData {
			_, m := protowire.ConsumeVarint(b[off:])
			return off + m
		}
		off += protowire.ConsumeFieldValue(num, typ, b[off:])
	}
	t.Fatal("no data field")
	return 0
}
