package transfer

import (
	"context"
	"crypto/x509"
	"net/url"
	"strings"

	"github.com/recoverd/recoverd/engine"
)

// Who calls the peer API. Only nodes may (DESIGN.md section 7): a node
// certificate is one the cluster CA marked with the URI SAN
// recoverd://node/<id>, which operator (client) certificates lack. The
// daemon's interceptor checks the mark and puts the id in the context;
// PeerServer uses it as the holder of the pins and leases a caller takes,
// bounds them per holder and lets only their holder renew or release them
// (or, for a pin, read under it).
//
// A caller without an identity (the daemon runs --insecure, on loopback,
// where nobody is authenticated) is the anonymous holder: every such
// caller is the same one, so the per-holder bounds apply to all of them
// together and each may renew or release what another took, as it could
// before there were holders. Plaintext is for one machine's tests and
// demos.

// NodeURIScheme and NodeURIHost make the URI SAN that marks a node
// certificate: recoverd://node/<id>.
const (
	NodeURIScheme = "recoverd"
	NodeURIHost   = "node"
)

// NodeURI is the URI SAN a CA puts in the certificate of node id.
func NodeURI(id string) *url.URL {
	return &url.URL{Scheme: NodeURIScheme, Host: NodeURIHost, Path: "/" + id}
}

// NodeID returns the node id a certificate's URI SAN names, and false when
// it names none (an operator or other client certificate) or a malformed
// one.
func NodeID(cert *x509.Certificate) (string, bool) {
	for _, u := range cert.URIs {
		if u.Scheme != NodeURIScheme || u.Host != NodeURIHost || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			continue
		}
		id, ok := strings.CutPrefix(u.Path, "/")
		if ok && engine.ValidateName(id) == nil {
			return id, true
		}
	}
	return "", false
}

type peerIdentityKey struct{}

// WithPeerIdentity returns ctx carrying the authenticated node id of the
// caller of the peer API.
func WithPeerIdentity(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, peerIdentityKey{}, id)
}

// PeerIdentity is the authenticated node id of the caller, or "" for the
// anonymous holder (no authentication).
func PeerIdentity(ctx context.Context) string {
	id, _ := ctx.Value(peerIdentityKey{}).(string)
	return id
}

// holderName names a holder in messages.
func holderName(id string) string {
	if id == "" {
		return "the anonymous holder (unauthenticated, --insecure)"
	}
	return "node " + id
}
