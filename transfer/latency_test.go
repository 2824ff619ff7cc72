package transfer

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// latencyProxy forwards TCP connections on 127.0.0.1 to target, delivering
// every piece of data delay after it was read, in each direction, without
// limiting bandwidth (unless rate is set): a stand-in for a network with a
// round trip of 2*delay, to see what the flow-control windows do. A fault,
// when set, breaks one connection's server-to-client bytes.
type latencyProxy struct {
	lis     net.Listener
	delay   time.Duration
	rate    int // bytes per second each way, per connection (0: unlimited)
	fault   *proxyFault
	faulted atomic.Bool // the fault happened
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

// proxyFault breaks connection conn (from 0, in the order accepted) at
// byte at of what goes from the server to the client.
type proxyFault struct {
	conn int
	at   int64
	kind faultKind
}

type faultKind int

const (
	// faultReset resets both ends, the byte at and those after it unsent,
	// as a crashed middlebox would: the client may lose what it had not
	// read yet.
	faultReset faultKind = iota
	// faultCut resets the server's end and closes the client's after the
	// bytes before at: the client reads them, then the end of its
	// connection.
	faultCut
	// faultFlip flips a bit of byte at and passes everything on.
	faultFlip
)

func startLatencyProxy(t testing.TB, target string, delay time.Duration) *latencyProxy {
	return startProxy(t, target, delay, nil)
}

// startSlowProxy forwards to target at rate bytes per second.
func startSlowProxy(t testing.TB, target string, rate int) *latencyProxy {
	return newProxy(t, target, &latencyProxy{rate: rate})
}

func startProxy(t testing.TB, target string, delay time.Duration, fault *proxyFault) *latencyProxy {
	return newProxy(t, target, &latencyProxy{delay: delay, fault: fault})
}

func newProxy(t testing.TB, target string, p *latencyProxy) *latencyProxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.lis = lis
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for i := 0; ; i++ {
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
			var f *proxyFault
			if p.fault != nil && p.fault.conn == i {
				f = p.fault
			}
			p.wg.Add(2)
			go p.pipe(u, c, nil)
			go p.pipe(c, u, f)
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

// pipe copies src to dst, breaking it as f says (nil: never).
func (p *latencyProxy) pipe(dst, src net.Conn, f *proxyFault) {
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
			if p.rate > 0 {
				time.Sleep(time.Duration(len(pc.data)) * time.Second / time.Duration(p.rate))
			}
		}
	}()
	var passed int64
	for {
		buf := make([]byte, 64<<10)
		n, err := src.Read(buf)
		if f != nil && n > 0 && f.at < passed+int64(n) {
			p.faulted.Store(true)
			switch f.kind {
			case faultReset:
				for _, c := range []net.Conn{src, dst} {
					resetOnClose(c)
					c.Close()
				}
				n = 0
			case faultCut:
				resetOnClose(src)
				src.Close()
				n, err = int(f.at-passed), io.EOF
			case faultFlip:
				buf[f.at-passed] ^= 0x40
			}
			f = nil
		}
		if n > 0 {
			q <- piece{at: time.Now().Add(p.delay), data: buf[:n]}
			passed += int64(n)
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

// resetOnClose makes closing c send a reset rather than a FIN.
func resetOnClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
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
