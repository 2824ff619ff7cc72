package transfer

import (
	"context"
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
}

// NewPeers returns an empty pool dialing with opts.
func NewPeers(opts ...grpc.DialOption) *Peers {
	return &Peers{opts: opts, conns: map[string]*grpc.ClientConn{}}
}

// Dial returns a PeerService client on the connection to addr (no I/O:
// the connection is made by the first call).
func (p *Peers) Dial(_ context.Context, addr string) (pb.PeerServiceClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return pb.NewPeerServiceClient(c), nil
	}
	c, err := grpc.NewClient(addr, p.opts...)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return pb.NewPeerServiceClient(c), nil
}

// Close closes every connection; a later Dial opens new ones.
func (p *Peers) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		c.Close()
		delete(p.conns, addr)
	}
}
