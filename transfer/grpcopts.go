package transfer

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"
)

// gRPC tuning for the daemon's servers and peer connections (see doc.go
// for the reasoning).
const (
	// StreamWindowSize is the HTTP/2 flow-control window of one stream: the
	// bytes a sender may have in flight on it before the receiver
	// acknowledges. 4 MiB keeps 4 chunks of 1 MiB in flight, enough for one
	// stream to fill 10 Gbit/s at up to ~3 ms round trip.
	StreamWindowSize = 4 << 20
	// ConnWindowSize is the window of a whole connection: four files in
	// flight times StreamWindowSize (files go on data connections, unless
	// the source serves none).
	ConnWindowSize = 16 << 20
	// MaxMessageSize bounds any message sent or received: a chunk is at
	// most MaxChunkSize (4 MiB) plus a few bytes of framing, an op batch
	// about 1 MiB, but one op may hold a larger document; 16 MiB covers
	// those while bounding what a peer can make this process allocate.
	MaxMessageSize = 16 << 20
	// bufferSize of the transport's socket reads and writes: a 1 MiB chunk
	// goes out in about one write and comes in in about one read, rather
	// than 32 of each at gRPC's default 32 KiB (syscalls were ~40% of both
	// daemons' CPU with 256 KiB; bench/README.md).
	bufferSize = 1 << 20

	// Keepalive: the client pings a connection silent for 20s and drops it
	// when the ping is not answered within 10s, so a dead peer is detected
	// in about 30s even in the middle of a stream (the idle watchdog of
	// FetchFiles covers a peer that is alive but stuck).
	clientPingTime    = 20 * time.Second
	serverPingTime    = 30 * time.Second
	pingTimeout       = 10 * time.Second
	minClientPingTime = 10 * time.Second
)

// ServerOptions are the gRPC server options of the daemon: static stream
// and connection windows, bounded message sizes, larger socket buffers and
// keepalive that drops dead clients. Credentials are the caller's to add.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.StaticStreamWindowSize(StreamWindowSize),
		grpc.StaticConnWindowSize(ConnWindowSize),
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
		grpc.ReadBufferSize(bufferSize),
		grpc.WriteBufferSize(bufferSize),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: serverPingTime, Timeout: pingTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: minClientPingTime, PermitWithoutStream: true}),
		experimental.BufferPool(bufferPool),
	}
}

// DialOptions are the gRPC dial options for peer (and control) connections,
// matching ServerOptions. Credentials are the caller's to add.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithStaticStreamWindowSize(StreamWindowSize),
		grpc.WithStaticConnWindowSize(ConnWindowSize),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
		grpc.WithReadBufferSize(bufferSize),
		grpc.WithWriteBufferSize(bufferSize),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: clientPingTime, Timeout: pingTimeout, PermitWithoutStream: true}),
		experimental.WithBufferPool(bufferPool),
	}
}
