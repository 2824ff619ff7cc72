package transfer

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" codec chunkCodec wraps
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// chunkCodec is the gRPC codec of a FetchFile call on the target: it reads
// a FileChunk into a recvChunk whose data stays in the message buffer gRPC
// assembled, rather than being copied out of it by proto.Unmarshal (one
// copy of every byte received, and a new 1 MiB allocation per chunk, 17%
// of the target's CPU in BenchmarkChunkPath). The buffer goes back to
// gRPC's pool once the chunk is written (recvChunk.release). Every other
// message is the proto codec's, under its name, so the server sees the
// usual content type.
type chunkCodec struct{}

var protoCodec = encoding.GetCodecV2("proto")

func (chunkCodec) Name() string { return protoCodec.Name() }

func (chunkCodec) Marshal(v any) (mem.BufferSlice, error) { return protoCodec.Marshal(v) }

func (chunkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	rc, ok := v.(*recvChunk)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(bufferPool)
	ch, err := parseFileChunk(buf.ReadOnlyData())
	if err != nil {
		buf.Free()
		return err
	}
	rc.release()
	rc.ch, rc.buf = ch, buf
	return nil
}

// recvChunk is a received FileChunk whose Data (and FileSum) alias buf.
type recvChunk struct {
	ch  *pb.FileChunk
	buf mem.Buffer
}

// release gives the chunk's buffer back: its data must not be used after.
func (rc *recvChunk) release() {
	if rc.buf != nil {
		rc.buf.Free()
		rc.buf = nil
	}
	rc.ch = nil
}

// The field numbers of FileChunk (TestFileChunkFieldNumbers holds them to
// the generated descriptor).
const (
	fcOffset             = 1
	fcData               = 2
	fcCRC32C             = 3
	fcCompression        = 4
	fcUncompressedLength = 5
	fcFile               = 6
	fcFileSum            = 7
)

// parseFileChunk decodes a FileChunk as proto.Unmarshal does, but with its
// bytes fields aliasing b. Unknown fields are skipped.
func parseFileChunk(b []byte) (*pb.FileChunk, error) {
	ch := &pb.FileChunk{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("transfer: FileChunk: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case typ == protowire.VarintType && (num == fcOffset || num == fcCompression || num == fcUncompressedLength || num == fcFile):
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			switch num {
			case fcOffset:
				ch.Offset = int64(v)
			case fcCompression:
				ch.Compression = pb.Compression(int32(v))
			case fcUncompressedLength:
				ch.UncompressedLength = uint32(v)
			case fcFile:
				ch.File = uint32(v)
			}
		case typ == protowire.BytesType && (num == fcData || num == fcFileSum):
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			if num == fcData {
				ch.Data = v
			} else {
				ch.FileSum = v
			}
		case typ == protowire.Fixed32Type && num == fcCRC32C:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			ch.Crc32C = v
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, fmt.Errorf("transfer: FileChunk field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return ch, nil
}
