package testutil

import (
	"sync/atomic"

	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"
)

// The two toxics of Proxy's own, registered with toxiproxy as "count" and
// "refuse" (see the package doc for why).

// proxyCounters are what Stats reports, and whether the proxy blackholes
// (to tell forwarded bytes from dropped ones).
type proxyCounters struct {
	blackholed                         atomic.Bool
	accepted, open, forwarded, dropped atomic.Int64
}

// countToxic passes every piece of data on unchanged, counting it. It is
// first in each direction, so it counts what the proxy read; a direction
// of a connection is open from its start until the end of what it reads.
type countToxic struct {
	c  *proxyCounters
	up bool
}

func (t *countToxic) NewState() any {
	if t.up {
		t.c.accepted.Add(1)
	}
	t.c.open.Add(1)
	return nil
}

func (t *countToxic) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case ch := <-stub.Input:
			if ch == nil {
				t.c.open.Add(-1)
				stub.Close()
				return
			}
			if t.c.blackholed.Load() {
				t.c.dropped.Add(int64(len(ch.Data)))
			} else {
				t.c.forwarded.Add(int64(len(ch.Data)))
			}
			stub.Output <- ch
		}
	}
}

// refuseToxic closes the connections that start while it is on, at once:
// it closes its output (toxiproxy then closes the socket it writes to)
// and reads its input to the end, so that the toxics before it never wait.
// The connections it was put on pass through.
type refuseToxic struct {
	on atomic.Bool // false while it is being put on open connections
}

type refuseState struct{ refuse bool }

func (t *refuseToxic) NewState() any { return &refuseState{refuse: t.on.Load()} }

func (t *refuseToxic) Pipe(stub *toxics.ToxicStub) {
	if !stub.State.(*refuseState).refuse {
		new(toxics.NoopToxic).Pipe(stub)
		return
	}
	stub.Close()
	for ch := range stub.Input {
		if ch == nil {
			return
		}
	}
}

func init() {
	toxics.Register("count", new(countToxic))
	toxics.Register("refuse", new(refuseToxic))
	// The bandwidth toxic logs to zerolog's global logger.
	zlog.Logger = zerolog.Nop()
}
