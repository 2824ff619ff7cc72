package transfer

import (
	"context"
	"crypto/tls"
	"sync"

	"google.golang.org/grpc"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// Peers keeps one client connection per peer address, dialed on first use
// with the options given (DialOptions plus the node's credentials): a node
// runs many recoveries from few sources.
type Peers struct {
	opts  []grpc.DialOption
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn

	data    bool        // fetch files on data connections
	dataTLS *tls.Config // their TLS config (nil: plaintext)
}

// NewPeers returns an empty pool dialing with opts.
func NewPeers(opts ...grpc.DialOption) *Peers {
	return &Peers{opts: opts, conns: map[string]*grpc.ClientConn{}}
}

// EnableData makes FetchFiles, with a client Dial returns, fetch files on
// data connections (dataconn.go) to the peer's listener, with the TLS
// config cfg (the one of the gRPC connections; nil: plaintext). A source
// that does not serve them is fetched from over gRPC. Call it before the
// first Dial.
func (p *Peers) EnableData(cfg *tls.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.data, p.dataTLS = true, cfg
}

// Dial returns a PeerService client on the connection to addr (no I/O:
// the connection is made by the first call).
func (p *Peers) Dial(_ context.Context, addr string) (pb.PeerServiceClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.conns[addr]
	if !ok {
		var err error
		if c, err = grpc.NewClient(addr, p.opts...); err != nil {
			return nil, err
		}
		p.conns[addr] = c
	}
	client := pb.NewPeerServiceClient(c)
	if !p.data {
		return client, nil
	}
	return peerClient{PeerServiceClient: client, data: &dataDialer{addr: addr, tls: p.dataTLS}}, nil
}

// peerClient is a PeerService client that can also open data connections
// to its peer.
type peerClient struct {
	pb.PeerServiceClient
	data *dataDialer
}

func (c peerClient) dataDialer() *dataDialer { return c.data }

// Close closes every connection; a later Dial opens new ones.
func (p *Peers) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		c.Close()
		delete(p.conns, addr)
	}
}
