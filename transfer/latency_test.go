package transfer

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// latencyProxy forwards TCP connections on 127.0.0.1 to target, delivering
// every piece of data delay after it was read, in each direction, without
// limiting bandwidth: a stand-in for a network with a round trip of
// 2*delay, to see what the flow-control windows do.
type latencyProxy struct {
	lis   net.Listener
	delay time.Duration
	// cutAfter, when set, resets the first connection once that many bytes
	// went from the server to the client.
	cutAfter int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func startLatencyProxy(t testing.TB, target string, delay time.Duration) *latencyProxy {
	return startProxy(t, target, delay, 0)
}

func startProxy(t testing.TB, target string, delay time.Duration, cutAfter int64) *latencyProxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &latencyProxy{lis: lis, delay: delay, cutAfter: cutAfter}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for first := true; ; first = false {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			limit := int64(-1)
			if first && p.cutAfter > 0 {
				limit = p.cutAfter
			}
			p.wg.Add(2)
			go p.pipe(u, c, -1)
			go p.pipe(c, u, limit)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *latencyProxy) addr() string { return p.lis.Addr().String() }

type piece struct {
	at   time.Time
	data []byte
}

// pipe copies src to dst; once more than limit bytes passed (limit >= 0)
// it resets both connections.
func (p *latencyProxy) pipe(dst, src net.Conn, limit int64) {
	defer p.wg.Done()
	q := make(chan piece, 1<<16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for pc := range q {
			time.Sleep(time.Until(pc.at))
			if _, err := dst.Write(pc.data); err != nil {
				for range q {
				}
				return
			}
		}
	}()
	for {
		buf := make([]byte, 64<<10)
		n, err := src.Read(buf)
		if limit >= 0 && n > 0 {
			if limit -= int64(n); limit < 0 {
				for _, c := range []net.Conn{src, dst} {
					if tc, ok := c.(*net.TCPConn); ok {
						tc.SetLinger(0) // RST, as a crashed middlebox would
					}
					c.Close()
				}
				n = 0
			}
		}
		if n > 0 {
			q <- piece{at: time.Now().Add(p.delay), data: buf[:n]}
		}
		if err != nil {
			close(q)
			<-done
			if err != io.EOF {
				dst.Close()
			} else if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
	}
}

func (p *latencyProxy) close() {
	p.lis.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
