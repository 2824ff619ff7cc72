package testutil

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// Proxy is a TCP proxy on loopback that a test puts between two processes
// (a target and its source node, a node and MinIO) to inject network
// faults. Modes apply to every connection, open or new:
//
//   - Pass forwards bytes, optionally slowed (Slow) and delayed (Delay).
//   - Blackhole accepts connections and reads from both sides but forwards
//     nothing, as a partition that drops packets: peers see silence, not an
//     error. Bytes dropped break the protocol on that connection (HTTP/2
//     frames lost), so when the proxy passes again every connection that
//     lost bytes is closed: the peers see a reset and reconnect, as after a
//     real partition long enough to kill their connections.
//   - Refuse closes every new connection at once (a peer that is down).
//
// Cut closes every open connection now, whatever the mode.
type Proxy struct {
	// Addr is the proxy's listening address (127.0.0.1:port).
	Addr string

	t        testing.TB
	upstream string
	ln       net.Listener
	wg       sync.WaitGroup
	ctx      context.Context // cancelled by Close: ends waits for the rate limit
	stop     context.CancelFunc

	mu      sync.Mutex
	mode    ProxyMode
	delay   time.Duration
	limiter *rate.Limiter // nil: unlimited
	conns   map[*proxyConn]struct{}
	closed  bool

	accepted, forwarded, dropped atomic.Int64
}

// ProxyMode is what a Proxy does with the bytes it reads.
type ProxyMode int

const (
	// ProxyPass forwards bytes.
	ProxyPass ProxyMode = iota
	// ProxyBlackhole reads and drops bytes.
	ProxyBlackhole
	// ProxyRefuse closes new connections at once.
	ProxyRefuse
)

func (m ProxyMode) String() string {
	switch m {
	case ProxyPass:
		return "pass"
	case ProxyBlackhole:
		return "blackhole"
	case ProxyRefuse:
		return "refuse"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

type proxyConn struct {
	client, upstream net.Conn
	lost             atomic.Bool // bytes were dropped: the stream is broken
	once             sync.Once
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		c.client.Close()
		c.upstream.Close()
	})
}

// StartProxy listens on a free loopback port and forwards connections to
// upstream (host:port). It is closed when the test ends.
func StartProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), t: t, upstream: upstream, ln: ln, conns: map[*proxyConn]struct{}{}}
	p.ctx, p.stop = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.mu.Lock()
		mode, closed := p.mode, p.closed
		p.mu.Unlock()
		if closed || mode == ProxyRefuse {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	c := &proxyConn{client: client, upstream: up}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(c, client, up) }()
	go func() { defer wg.Done(); p.pipe(c, up, client) }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// pipe copies src to dst under the proxy's mode until either side closes;
// then it closes both.
func (p *Proxy) pipe(c *proxyConn, src, dst net.Conn) {
	defer c.close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			mode, delay, lim := p.mode, p.delay, p.limiter
			p.mu.Unlock()
			if mode != ProxyPass || c.lost.Load() {
				c.lost.Store(true)
				p.dropped.Add(int64(n))
			} else {
				if delay > 0 {
					time.Sleep(delay)
				}
				if werr := p.write(dst, buf[:n], lim); werr != nil {
					return
				}
				p.forwarded.Add(int64(n))
			}
		}
		if err != nil {
			return // EOF or error: both sides are closed (no half-close)
		}
	}
}

// write sends b to dst, at most the limiter's rate.
func (p *Proxy) write(dst net.Conn, b []byte, lim *rate.Limiter) error {
	for len(b) > 0 {
		n := len(b)
		if lim != nil {
			n = min(n, lim.Burst())
			if err := lim.WaitN(p.ctx, n); err != nil {
				return err
			}
		}
		if _, err := dst.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// Mode is the current mode.
func (p *Proxy) Mode() ProxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

func (p *Proxy) setMode(m ProxyMode) {
	p.mu.Lock()
	p.mode = m
	var broken []*proxyConn
	if m == ProxyPass {
		for c := range p.conns {
			if c.lost.Load() {
				broken = append(broken, c)
			}
		}
	}
	p.mu.Unlock()
	for _, c := range broken {
		c.close()
	}
}

// Pass forwards bytes again; connections that lost bytes while the proxy
// blackholed are closed.
func (p *Proxy) Pass() { p.setMode(ProxyPass) }

// Blackhole drops every byte in both directions from now on, on open and
// new connections, without closing anything.
func (p *Proxy) Blackhole() { p.setMode(ProxyBlackhole) }

// Refuse closes new connections as soon as they are accepted; open ones
// are left alone (Cut them too for a peer that went away).
func (p *Proxy) Refuse() { p.setMode(ProxyRefuse) }

// Cut closes every open connection (both sides) now.
func (p *Proxy) Cut() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// Slow limits forwarding to bytesPerSec in all (both directions of every
// connection share it); 0 removes the limit.
func (p *Proxy) Slow(bytesPerSec int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bytesPerSec <= 0 {
		p.limiter = nil
		return
	}
	burst := max(min(bytesPerSec/10, 32<<10), 1)
	p.limiter = rate.NewLimiter(rate.Limit(bytesPerSec), burst)
}

// Delay holds every piece of data read for d before forwarding it (added
// latency); 0 removes it.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// ProxyStats count what a Proxy did.
type ProxyStats struct {
	Accepted  int64 // connections accepted
	Open      int   // connections open now
	Forwarded int64 // bytes forwarded
	Dropped   int64 // bytes read and dropped
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() ProxyStats {
	p.mu.Lock()
	open := len(p.conns)
	p.mu.Unlock()
	return ProxyStats{Accepted: p.accepted.Load(), Open: open, Forwarded: p.forwarded.Load(), Dropped: p.dropped.Load()}
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.stop()
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
