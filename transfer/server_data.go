package transfer

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// The source side of data connections (dataconn.go): the peer listener
// split between gRPC and the data server.

// DataConfig is how a PeerServer serves data connections.
type DataConfig struct {
	// TLS is the peer listener's config (nil: plaintext, --insecure).
	TLS *tls.Config
	// Authorize checks a caller as the peer listener's interceptor does,
	// given a context carrying its peer.Peer (with its TLS state) and the
	// method, and returns the context the handler runs with (carrying the
	// caller's identity: WithPeerIdentity). Nil lets everyone in.
	Authorize func(ctx context.Context, method string) (context.Context, error)
	// SniffTimeout bounds the wait for a new connection's first bytes;
	// then it goes to gRPC, with its own handshake deadline (0: 10s).
	SniffTimeout time.Duration
	// WriteTimeout fails a data connection whose reader took none of a
	// chunk's bytes for this long (a dead target: gRPC's keepalive does
	// this for its streams), which ends the pin's use (0: 2 minutes). It
	// bounds each dataWritePiece of a chunk, not the whole chunk: a target
	// behind a slow link still reads.
	WriteTimeout time.Duration
}

const (
	defaultDataSniffTimeout = 10 * time.Second
	defaultDataWriteTimeout = 2 * time.Minute
)

// DataListener returns the listener to serve the peer API's gRPC server
// on: lis, less the data connections, which s serves itself. Closing it
// (the gRPC server does on Stop) closes lis and the data connections.
func (s *PeerServer) DataListener(lis net.Listener, cfg DataConfig) net.Listener {
	if cfg.SniffTimeout <= 0 {
		cfg.SniffTimeout = defaultDataSniffTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaultDataWriteTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &dataListener{Listener: lis, srv: s, cfg: cfg, ctx: ctx, cancel: cancel,
		grpc: make(chan net.Conn), conns: map[net.Conn]struct{}{}}
	go l.acceptLoop()
	return l
}

type dataListener struct {
	net.Listener
	srv    *PeerServer
	cfg    DataConfig
	ctx    context.Context
	cancel context.CancelFunc
	grpc   chan net.Conn

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // data connections being served
	err    error                 // why the accept loop stopped
	closed bool
}

func (l *dataListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				l.mu.Lock()
				l.err = err
				l.mu.Unlock()
				l.cancel()
				return
			}
			time.Sleep(10 * time.Millisecond) // out of descriptors: as net/http does
			continue
		}
		go l.route(c)
	}
}

// route reads a connection's first bytes: a data connection is served
// here, any other goes to gRPC with those bytes put back.
func (l *dataListener) route(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(l.cfg.SniffTimeout))
	var first [len(dataMagic)]byte
	n, _ := io.ReadFull(c, first[:])
	c.SetReadDeadline(time.Time{})
	if n == len(first) && first == dataMagic {
		if l.track(c) {
			defer l.untrack(c)
			l.srv.serveData(l.ctx, c, l.cfg)
		}
		return
	}
	pc := &prefixConn{Conn: c, prefix: first[:n]}
	select {
	case l.grpc <- pc:
	case <-l.ctx.Done():
		c.Close()
	}
}

// Accept returns the next connection that is not a data connection.
func (l *dataListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.grpc:
		return c, nil
	case <-l.ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

// Close closes the listener and every data connection.
func (l *dataListener) Close() error {
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.cancel()
	return l.Listener.Close()
}

func (l *dataListener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *dataListener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	c.Close()
}

// prefixConn is a connection whose first bytes were read already.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// serveData answers the one request of a data connection whose magic was
// read. Errors before the request are the connection's end (the target
// sees it cut and retries); after, they go to the target in the end frame.
func (s *PeerServer) serveData(ctx context.Context, raw net.Conn, cfg DataConfig) {
	raw.SetDeadline(time.Now().Add(dataHandshakeTimeout))
	if _, err := raw.Write(dataAck[:]); err != nil {
		return
	}
	conn := raw
	p := &peer.Peer{Addr: raw.RemoteAddr(), LocalAddr: raw.LocalAddr()}
	if cfg.TLS != nil {
		tc := tls.Server(raw, cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			s.log.Debug("data connection: TLS handshake failed", "peer", raw.RemoteAddr().String(), "error", err)
			return
		}
		conn = tc
		p.AuthInfo = credentials.TLSInfo{State: tc.ConnectionState(),
			CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
	}
	kind, buf, err := readFrame(conn, maxRequestFrame)
	if err != nil {
		return
	}
	req := &pb.FetchFileRequest{}
	err = proto.Unmarshal(buf.ReadOnlyData(), req)
	buf.Free()
	raw.SetDeadline(time.Time{})
	if kind != frameRequest {
		err = status.Errorf(codes.InvalidArgument, "data connection: frame of kind %d where a request was expected", kind)
	} else if err != nil {
		err = status.Errorf(codes.InvalidArgument, "data connection: request: %v", err)
	}
	ctx, cancel := context.WithCancel(peer.NewContext(ctx, p))
	defer cancel()
	// The target sends nothing after its request: a read that ends is the
	// target gone, which cancels the request as gRPC would.
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		cancel()
	}()
	if err == nil && cfg.Authorize != nil {
		ctx, err = cfg.Authorize(ctx, pb.PeerService_FetchFile_FullMethodName)
	}
	if err == nil {
		s.c.dataStreams.Add(1)
		err = s.fetchFile(ctx, req, &dataSender{conn: conn, timeout: cfg.WriteTimeout}, MaxChunkSize)
	}
	st, _ := status.FromError(err)
	if err != nil && st.Code() == codes.Unknown {
		st = status.FromContextError(err) // as gRPC maps a handler's context error
	}
	conn.SetWriteDeadline(time.Now().Add(dataHandshakeTimeout))
	if werr := writeMessageFrame(conn, frameEnd, st.Proto()); werr != nil && err == nil {
		s.log.Debug("data connection: end frame not sent", "peer", raw.RemoteAddr().String(), "error", werr)
	}
	if tc, ok := conn.(*tls.Conn); ok {
		_ = tc.CloseWrite()
	}
}

// dataSender writes a FetchFile's chunks to a data connection: the chunk's
// fields, then its data straight from the caller's buffer (writev on a
// plaintext connection), in pieces of dataWritePiece, each with the write
// deadline.
type dataSender struct {
	conn    net.Conn
	timeout time.Duration // for each dataWritePiece's write (DataConfig.WriteTimeout)
	head    []byte
}

func (d *dataSender) Send(ch *pb.FileChunk) error {
	data := ch.Data
	ch.Data = nil
	head, err := proto.MarshalOptions{}.MarshalAppend(append(d.head[:0], make([]byte, frameHeadLen)...), ch)
	ch.Data = data
	if err != nil {
		return status.Errorf(codes.Internal, "data connection: %v", err)
	}
	head = protowire.AppendTag(head, fcData, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(len(data)))
	putFrameHead(head, frameChunk, len(head)-frameHeadLen+len(data))
	d.head = head
	k := min(len(data), dataWritePiece)
	bufs, rest := net.Buffers{head, data[:k]}, data[k:]
	for {
		d.conn.SetWriteDeadline(time.Now().Add(d.timeout))
		if _, err := bufs.WriteTo(d.conn); err != nil {
			return status.Errorf(codes.Unavailable, "data connection: %v", err)
		}
		if len(rest) == 0 {
			return nil
		}
		k = min(len(rest), dataWritePiece)
		bufs, rest = net.Buffers{rest[:k]}, rest[k:]
	}
}

// dataWritePiece is how much of a chunk goes to the socket under one write
// deadline. A whole chunk under one deadline failed a target that reads
// (with eight streams of 4 MiB chunks, a link under 2.2 Mbit/s takes
// longer than the 2 minutes to move one); 1 MiB passes at 9 KB/s a stream.
const dataWritePiece = 1 << 20
