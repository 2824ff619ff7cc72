package testutil

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
)

// Proxy is a TCP proxy on loopback that a test puts between two processes
// (a target and its source node, a node and MinIO) to inject network
// faults: Shopify's toxiproxy, run in-process as a library (no HTTP API).
// Each fault is one of its toxics, put on both directions, and applies to
// every connection, open or new:
//
//   - Pass forwards bytes, optionally slowed (Slow: the bandwidth toxic)
//     and delayed (Delay: the latency toxic).
//   - Blackhole accepts connections and reads from both sides but forwards
//     nothing (the timeout toxic, with no timeout), as a partition that
//     drops packets: peers see silence, not an error. Bytes dropped break
//     the protocol on a connection (HTTP/2 frames lost), so when the proxy
//     passes again every connection open through the blackhole is closed:
//     the peers see a reset and reconnect, as after a real partition long
//     enough to kill their connections.
//   - Refuse closes every new connection at once (a peer that is down);
//     open ones are left alone. This one is a toxic of this package's own
//     (see the package doc).
//
// Cut closes every open connection now, whatever the mode.
type Proxy struct {
	// Addr is the proxy's listening address (127.0.0.1:port).
	Addr string

	px *toxiproxy.Proxy
	c  *proxyCounters

	mu        sync.Mutex
	mode      proxyMode
	listening bool
	closed    bool
}

type proxyMode int

const (
	proxyPass proxyMode = iota
	proxyBlackhole
	proxyRefuse
)

var directions = []stream.Direction{stream.Upstream, stream.Downstream}

// StartProxy listens on a free loopback port and forwards connections to
// upstream (host:port). It is closed when the test ends.
func StartProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := &Proxy{px: toxiproxy.NewProxy(srv, "testutil", "127.0.0.1:0", upstream), c: &proxyCounters{}}
	for _, dir := range directions {
		w, err := p.add("count", "count", dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Toxic.(*countToxic).c = p.c
		w.Toxic.(*countToxic).up = dir == stream.Upstream
	}
	if err := p.px.Start(); err != nil {
		t.Fatal(err)
	}
	p.Addr, p.listening = p.px.Listen, true
	t.Cleanup(p.Close)
	return p
}

// add puts a toxic of type typ at the end of the chain of direction dir,
// named after name and the direction.
func (p *Proxy) add(name, typ string, dir stream.Direction, attrs map[string]int64) (*toxics.ToxicWrapper, error) {
	b, err := json.Marshal(map[string]any{"name": name + "_" + dir.String(), "type": typ, "stream": dir.String(), "attributes": attrs})
	if err != nil {
		return nil, err
	}
	w, err := p.px.Toxics.AddToxicJson(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("testutil: toxiproxy: add %s: %w", typ, err)
	}
	return w, nil
}

// both puts a toxic on both directions. The toxics are of types toxiproxy
// registers: an error is a bug here.
func (p *Proxy) both(name, typ string, attrs map[string]int64) {
	for _, dir := range directions {
		if _, err := p.add(name, typ, dir, attrs); err != nil {
			panic(err)
		}
	}
}

// remove takes the toxic named name off both directions, if there.
func (p *Proxy) remove(name string) {
	for _, dir := range directions {
		_ = p.px.Toxics.RemoveToxic(context.Background(), name+"_"+dir.String())
	}
}

func (p *Proxy) blackholeOn() {
	if p.px.Toxics.GetToxic("blackhole_upstream") == nil {
		p.c.blackholed.Store(true)
		p.both("blackhole", "timeout", map[string]int64{"timeout": 0})
	}
}

// refuseOn puts the refuse toxic on; the connections open then pass
// through it.
func (p *Proxy) refuseOn() {
	if p.px.Toxics.GetToxic("refuse_upstream") != nil {
		return
	}
	for _, dir := range directions {
		w, err := p.add("refuse", "refuse", dir, nil)
		if err != nil {
			panic(err)
		}
		w.Toxic.(*refuseToxic).on.Store(true)
	}
}

func (p *Proxy) blackholeOff() {
	p.remove("blackhole")
	p.c.blackholed.Store(false)
}

// closeAll stops listening and closes every connection, then waits for
// every connection's toxics to end. It does so under the blackhole: a
// toxic passing data on when its connection is closed would wait forever
// for a writer that is gone (toxiproxy's links do not drain), and the
// timeout toxic reads everything and passes nothing on. toxiproxy listens
// again on the same port (setMode).
func (p *Proxy) closeAll() {
	if !p.listening {
		return
	}
	p.blackholeOn()
	p.px.Stop()
	p.listening = false
	for deadline := time.Now().Add(10 * time.Second); p.c.open.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

// setMode moves to mode m. Connections are closed when cut is set, when
// the proxy refuses, and when a blackhole is lifted.
func (p *Proxy) setMode(m proxyMode, cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.listening && (cut || p.mode == proxyBlackhole && m != proxyBlackhole) {
		p.closeAll()
	}
	if m == proxyBlackhole {
		p.blackholeOn()
	} else {
		p.blackholeOff()
	}
	if m == proxyRefuse {
		p.refuseOn()
	} else {
		p.remove("refuse")
	}
	if !p.listening {
		// The same port: toxiproxy listens again where it listened.
		if err := p.px.Start(); err != nil {
			panic(fmt.Sprintf("testutil: proxy listening again on %s: %v", p.Addr, err))
		}
		p.listening = true
	}
	p.mode = m
}

// Pass forwards bytes again; connections open through a blackhole are
// closed.
func (p *Proxy) Pass() { p.setMode(proxyPass, false) }

// Blackhole drops every byte in both directions from now on, on open and
// new connections, without closing anything.
func (p *Proxy) Blackhole() { p.setMode(proxyBlackhole, false) }

// Refuse closes new connections as soon as they are accepted; open ones
// are left alone (Cut them too for a peer that went away).
func (p *Proxy) Refuse() { p.setMode(proxyRefuse, false) }

// Cut closes every open connection (both sides) now. New connections
// are refused for the moment it takes (see closeAll).
func (p *Proxy) Cut() {
	p.mu.Lock()
	m := p.mode
	p.mu.Unlock()
	p.setMode(m, true)
}

// Slow limits forwarding to about bytesPerSec in each direction of each
// connection (toxiproxy counts in units of 1000 bytes); 0 removes the
// limit.
func (p *Proxy) Slow(bytesPerSec int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.remove("slow")
	if bytesPerSec > 0 {
		p.both("slow", "bandwidth", map[string]int64{"rate": max(int64(bytesPerSec)/1000, 1)})
	}
}

// Delay delivers every piece of data d after it was read, in each
// direction (added latency, not a bandwidth limit); 0 removes it.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.remove("delay")
	if d > 0 {
		p.both("delay", "latency", map[string]int64{"latency": d.Milliseconds()})
	}
}

// ProxyStats count what a Proxy did. Bytes are counted as the proxy reads
// them: a byte read as the mode changes counts in the mode it was read in.
type ProxyStats struct {
	Accepted  int64 // connections accepted (and their upstream dialled)
	Open      int64 // connections open now
	Forwarded int64 // bytes read while the proxy did not blackhole
	Dropped   int64 // bytes read while it blackholed
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() ProxyStats {
	return ProxyStats{Accepted: p.c.accepted.Load(), Open: p.c.open.Load() / 2, Forwarded: p.c.forwarded.Load(), Dropped: p.c.dropped.Load()}
}

// Close stops listening, closes every connection and waits for the
// proxy's toxics to end.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.closeAll()
}
