package transfer

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
	"unsafe"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// The data connection: FetchFile outside gRPC.
//
// Over gRPC every byte of a file is copied into a message, then into
// HTTP/2 frames of 16 KiB, on the source, and out of the frames on the
// target (bench/README.md, Issue 15 item 12). A data connection carries
// the same request and the same FileChunks, with every check (per-chunk
// CRC32C, the file's CRC32C and BLAKE3 sum, resume from the last verified
// offset, both throttles, compression, cancel), in frames of its own: the
// source writes a chunk's bytes to the socket from the buffer it read them
// into (writev), and the target reads them into the buffer it writes to
// the file from. No library frames this: it is a request and a run of
// length-prefixed messages.
//
// A data connection goes to the peer listener, like gRPC: it opens with
// dataMagic, in plaintext, which neither a TLS ClientHello nor the HTTP/2
// preface begins with, and the listener (DataListener) hands it to the
// data server while every other connection goes to gRPC. The source
// answers dataAck. Then comes TLS, with the peer listener's config and the
// same check of the client's certificate as the gRPC interceptor makes,
// then one request frame (a FetchFileRequest) and its answer: chunk frames,
// then one end frame. A frame is
//
//	kind (1 byte) | payload length (4 bytes, big-endian) | payload
//
// A chunk frame's payload is a FileChunk in protobuf wire format; an end
// frame's a google.rpc.Status, OK when every file asked for was sent, else
// the error the gRPC stream would have ended with. One request per
// connection. A source that does not serve data connections closes the
// connection without dataAck; the target then fetches over gRPC.
var (
	dataMagic = [8]byte{'R', 'C', 'V', 'D', 'D', 'A', 'T', '1'}
	dataAck   = [8]byte{'R', 'C', 'V', 'D', 'O', 'K', '0', '1'}
)

const (
	frameRequest byte = 1
	frameChunk   byte = 2
	frameEnd     byte = 3

	frameHeadLen = 5
	// maxRequestFrame bounds the request the source reads before it knows
	// who asks: a FetchFileRequest names at most 1025 files.
	maxRequestFrame = 1 << 20
	// dataHandshakeTimeout bounds the exchange before the first chunk:
	// magic, TLS and the request.
	dataHandshakeTimeout = 10 * time.Second
)

// errNoDataConn: the source does not serve data connections.
var errNoDataConn = errors.New("transfer: the source does not serve data connections")

// putFrameHead writes a frame's kind and payload length into b[:frameHeadLen].
func putFrameHead(b []byte, kind byte, n int) {
	b[0] = kind
	binary.BigEndian.PutUint32(b[1:frameHeadLen], uint32(n))
}

// writeMessageFrame writes a frame whose payload is m.
func writeMessageFrame(w io.Writer, kind byte, m proto.Message) error {
	b := make([]byte, frameHeadLen, frameHeadLen+proto.Size(m))
	b, err := proto.MarshalOptions{}.MarshalAppend(b, m)
	if err != nil {
		return err
	}
	putFrameHead(b, kind, len(b)-frameHeadLen)
	_, err = w.Write(b)
	return err
}

// readFrame reads one frame; its payload is in a buffer of bufferPool,
// which the caller frees. A payload larger than limit is refused.
func readFrame(r io.Reader, limit uint32) (byte, mem.Buffer, error) {
	var head [frameHeadLen]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(head[1:]))
	if n > int(limit) {
		return 0, nil, fmt.Errorf("frame of %d bytes, at most %d", n, limit)
	}
	if head[0] == frameChunk && n >= alignedFrameMin {
		buf, err := readAlignedChunk(r, n)
		return head[0], buf, err
	}
	b := bufferPool.Get(n)
	if _, err := io.ReadFull(r, *b); err != nil {
		bufferPool.Put(b)
		return 0, nil, unexpectedEOF(err)
	}
	return head[0], mem.NewBuffer(b, bufferPool), nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// A chunk's data is read to a 4096-aligned address, so that staging writes
// it to the file with O_DIRECT (internal/staging/direct.go). The source
// puts the data field last in the frame, after the chunk's other fields
// (dataSender): readAlignedChunk reads the first bytes, finds where the
// data starts, and reads the rest so that it lands aligned. Buffers of
// bufferPool's large tiers are Go large objects, which start on a page.
const (
	alignedFrameMin = 64 << 10 // smaller chunks are written through the page cache anyway
	frameAlign      = 4096
	// chunkHeadPeek is how much of a frame is read to find its data field:
	// the fields before it take some 50 bytes (80 with the file's sum).
	chunkHeadPeek = 256
)

// readAlignedChunk reads a chunk frame's n-byte payload into a buffer of
// bufferPool at an offset that puts the data field's first byte on a
// frameAlign boundary (anywhere, should the field not be found early).
func readAlignedChunk(r io.Reader, n int) (mem.Buffer, error) {
	var peek [chunkHeadPeek]byte
	k := min(n, len(peek))
	if _, err := io.ReadFull(r, peek[:k]); err != nil {
		return nil, unexpectedEOF(err)
	}
	shift := 0
	if d := dataFieldOffset(peek[:k]); d > 0 {
		shift = (frameAlign - d%frameAlign) % frameAlign
	}
	slab := bufferPool.Get(n + frameAlign)
	if base := uintptr(unsafe.Pointer(unsafe.SliceData(*slab))); base%frameAlign != 0 {
		shift = 0 // not page-aligned after all: read it as it comes
	}
	view := (*slab)[shift : shift+n]
	copy(view, peek[:k])
	if _, err := io.ReadFull(r, view[k:]); err != nil {
		bufferPool.Put(slab)
		return nil, unexpectedEOF(err)
	}
	return mem.NewBuffer(&view, slabPool{slab}), nil
}

// dataFieldOffset is the offset in a FileChunk's encoding b (its start) at
// which the data field's bytes begin, 0 if b does not reach them.
func dataFieldOffset(b []byte) int {
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return 0
		}
		off += n
		if num == fcData && typ == protowire.BytesType {
			_, m := protowire.ConsumeVarint(b[off:])
			if m < 0 {
				return 0
			}
			return off + m
		}
		m := protowire.ConsumeFieldValue(num, typ, b[off:])
		if m < 0 {
			return 0
		}
		off += m
	}
	return 0
}

// slabPool gives a chunk's whole buffer back to bufferPool when the
// chunk, a view into it, is freed.
type slabPool struct{ slab *[]byte }

func (p slabPool) Get(n int) *[]byte { return bufferPool.Get(n) }
func (p slabPool) Put(*[]byte)       { bufferPool.Put(p.slab) }

// dataDialer opens data connections to a peer: the address of its peer
// listener and the TLS config of the node's gRPC connections (nil: plaintext).
type dataDialer struct {
	addr string
	tls  *tls.Config
}

// fetch opens a data connection and sends req on it; onRead is called
// after each read of the answer that brings bytes. It returns
// errNoDataConn when the source answers without dataAck; other errors are
// the statuses the gRPC call would have met (Unavailable).
func (d *dataDialer) fetch(ctx context.Context, req *pb.FetchFileRequest, onRead func()) (*dataStream, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, connStatus(ctx, d.addr, err)
	}
	ds := &dataStream{ctx: ctx, addr: d.addr, conn: c}
	ds.stop = context.AfterFunc(ctx, func() { c.Close() })
	if err := ds.open(ctx, d.tls, req, onRead); err != nil {
		ds.close()
		return nil, err
	}
	return ds, nil
}

// dataStream is the answer to a FetchFile request on a data connection,
// read as a gRPC stream is (chunkStream).
type dataStream struct {
	ctx  context.Context
	addr string
	conn net.Conn
	r    *bufio.Reader
	stop func() bool
}

func (ds *dataStream) open(ctx context.Context, cfg *tls.Config, req *pb.FetchFileRequest, onRead func()) error {
	raw := ds.conn
	raw.SetDeadline(time.Now().Add(dataHandshakeTimeout))
	if _, err := raw.Write(dataMagic[:]); err != nil {
		return connStatus(ctx, ds.addr, err)
	}
	var ack [len(dataAck)]byte
	if _, err := io.ReadFull(raw, ack[:]); err != nil || ack != dataAck {
		if ctx.Err() != nil {
			return connStatus(ctx, ds.addr, ctx.Err())
		}
		return errNoDataConn
	}
	if cfg != nil {
		cfg = cfg.Clone()
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(ds.addr)
			cfg.ServerName = host
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return connStatus(ctx, ds.addr, fmt.Errorf("TLS handshake: %w", err))
		}
		ds.conn = tc
	}
	if err := writeMessageFrame(ds.conn, frameRequest, req); err != nil {
		return connStatus(ctx, ds.addr, err)
	}
	raw.SetDeadline(time.Time{})
	// Big reads (a chunk) bypass the buffer: it only gathers frame heads.
	ds.r = bufio.NewReaderSize(progressReader{ds.conn, onRead}, 64<<10)
	return nil
}

// progressReader calls onRead after each read that brings bytes.
type progressReader struct {
	r      io.Reader
	onRead func()
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.onRead()
	}
	return n, err
}

// RecvMsg reads the next chunk into m (a *recvChunk), io.EOF after an OK
// end frame, or the end frame's error.
func (ds *dataStream) RecvMsg(m any) error {
	rc := m.(*recvChunk)
	kind, buf, err := readFrame(ds.r, MaxMessageSize)
	if err != nil {
		return connStatus(ds.ctx, ds.addr, err)
	}
	switch kind {
	case frameChunk:
		ch, err := parseFileChunk(buf.ReadOnlyData())
		if err != nil {
			buf.Free()
			return status.Errorf(codes.Internal, "data connection to %s: %v", ds.addr, err)
		}
		rc.release()
		rc.ch, rc.buf = ch, buf
		return nil
	case frameEnd:
		var st spb.Status
		err := proto.Unmarshal(buf.ReadOnlyData(), &st)
		buf.Free()
		if err != nil {
			return status.Errorf(codes.Internal, "data connection to %s: end frame: %v", ds.addr, err)
		}
		if err := status.ErrorProto(&st); err != nil {
			return err
		}
		return io.EOF
	default:
		buf.Free()
		return status.Errorf(codes.Internal, "data connection to %s: frame of unknown kind %d", ds.addr, kind)
	}
}

func (ds *dataStream) close() {
	ds.stop()
	ds.conn.Close()
}

// connStatus is the status of a broken data connection, as gRPC would
// give it: Unavailable (transient: the stream resumes), or the context's
// when it ended.
func connStatus(ctx context.Context, addr string, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return status.Errorf(codes.Unavailable, "data connection to %s: %v", addr, err)
}
