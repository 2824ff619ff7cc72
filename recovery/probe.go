package recovery

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/recoverd/recoverd/api/rpcerr"
)

// Fail fast on what cannot work: a recovery whose source address is not
// an address, or whose source refuses connections, is refused when it is
// asked for, not reported failed once the whole retry budget has passed.
// A source that answered at start and goes away later is still retried
// within the budget: only the first contact is probed.

var (
	// ErrSourceAddress marks a source address that is not host:port
	// (rpcerr.ErrSourceAddress: InvalidArgument).
	ErrSourceAddress = rpcerr.ErrSourceAddress
	// ErrSourceUnreachable marks a source that could not be connected to
	// when the recovery was asked for (rpcerr.ErrSourceUnreachable:
	// Unavailable, SOURCE_UNREACHABLE).
	ErrSourceUnreachable = rpcerr.ErrSourceUnreachable
)

// SourceProbeTimeout bounds the one connection attempt made to a source
// before a recovery (or a plan) is accepted.
const SourceProbeTimeout = 3 * time.Second

// ValidateSourceAddress checks that addr is host:port, as the peer
// listener's --peer-addr is: a host name or IP address and a port from 1
// to 65535, nothing else (no scheme, no path).
func ValidateSourceAddress(addr string) error {
	if why := addressProblem(addr); why != "" {
		return fmt.Errorf("%w %q: %s; want host:port of the source node's peer listener (its --peer-addr), e.g. 10.0.0.1:7401", ErrSourceAddress, addr, why)
	}
	return nil
}

// addressProblem says what is wrong with a host:port, or "".
func addressProblem(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil:
		return err.Error()
	case host == "":
		return "the host is missing"
	case net.ParseIP(host) == nil && !validHostName(host):
		return fmt.Sprintf("%q is neither an IP address nor a host name", host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("port %q is not a number from 1 to 65535", port)
	}
	return ""
}

// validHostName accepts DNS names: dot-separated labels of letters,
// digits and '-', none empty, none starting or ending with '-'.
func validHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// ProbeSource opens one TCP connection to addr within timeout and closes
// it. A refusal, an unreachable network, an unknown host or no answer
// within the timeout is an ErrSourceUnreachable error that carries the
// dial error. It probes the transport only: whether the source holds the
// shard and accepts this node is the recovery's first call to find out.
func ProbeSource(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrSourceUnreachable, addr, err)
	}
	return c.Close()
}
