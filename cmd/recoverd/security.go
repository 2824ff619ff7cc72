package main

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/recoverd/recoverd/transfer"
)

// security is how the node authenticates: mutual TLS between peers (both
// sides present a certificate signed by the cluster CA), TLS plus a bearer
// token on the control API. Plaintext only with --insecure, and only when
// every listener is on loopback.
//
// On the peer listener the TLS handshake asks for the client's certificate
// and an interceptor verifies it against the cluster CA before any handler
// runs: a caller without one, or with one another CA signed, gets
// Unauthenticated with a message that says what is missing (a refusal in
// the handshake would reach it as an opaque Unavailable), and nothing is
// read or written for it. Only node certificates may use the peer API: the
// CA marks them with the URI SAN recoverd://node/<id> (recoverctl certs
// does), which operator certificates lack; a certificate without it gets
// PermissionDenied. The node id it names is the caller's identity
// (transfer.WithPeerIdentity): the holder of the pins and leases it takes,
// bounded per holder, renewed and released only by it. With --insecure
// nobody is authenticated and every caller is the anonymous holder (see
// transfer/identity.go). Health checks stay open, as on the control API.
type security struct {
	insecure bool
	server   *tls.Config // control listener: server certificate
	peer     *tls.Config // peer listener: server certificate, client certificate asked for
	dial     *tls.Config // dialing peers: client certificate, server verified
	ca       *x509.CertPool
	token    []byte
}

func loadSecurity(cfg Config) (*security, error) {
	if cfg.Insecure {
		for _, addr := range []string{cfg.GRPCAddr, cfg.PeerAddr, cfg.HTTPAddr} {
			if !isLoopback(addr) {
				return nil, fmt.Errorf("--insecure serves plaintext and is refused on %s: bind every listener to loopback, or configure --tls-cert, --tls-key, --tls-ca and --token-file", addr)
			}
		}
		sec := &security{insecure: true}
		if cfg.TokenFile != "" {
			tok, err := readToken(cfg.TokenFile)
			if err != nil {
				return nil, err
			}
			sec.token = tok
		}
		return sec, nil
	}
	if cfg.TLSCert == "" || cfg.TLSKey == "" || cfg.TLSCA == "" || cfg.TokenFile == "" {
		return nil, errors.New("TLS is required: set --tls-cert, --tls-key, --tls-ca and --token-file (recoverctl certs makes a test CA), or --insecure on loopback")
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("load node certificate: %w", err)
	}
	caPEM, err := os.ReadFile(cfg.TLSCA)
	if err != nil {
		return nil, fmt.Errorf("read cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("cluster CA %s holds no PEM certificate", cfg.TLSCA)
	}
	tok, err := readToken(cfg.TokenFile)
	if err != nil {
		return nil, err
	}
	return &security{
		server: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
		// Verified by verifyPeer, so that a refusal is a gRPC status.
		peer: &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert,
			MinVersion: tls.VersionTLS13},
		dial:  &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13},
		ca:    pool,
		token: tok,
	}, nil
}

func readToken(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read token file: %w", err)
	}
	tok := []byte(strings.TrimSpace(string(b)))
	if len(tok) < 16 {
		return nil, fmt.Errorf("token in %s is %d bytes; use at least 16 random bytes", path, len(tok))
	}
	return tok, nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *security) controlCreds() grpc.ServerOption {
	if s.insecure {
		return grpc.Creds(insecure.NewCredentials())
	}
	return grpc.Creds(credentials.NewTLS(s.server))
}

func (s *security) peerCreds() grpc.ServerOption {
	if s.insecure {
		return grpc.Creds(insecure.NewCredentials())
	}
	return grpc.Creds(credentials.NewTLS(s.peer))
}

func (s *security) dialCreds() grpc.DialOption {
	if s.insecure {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(s.dial))
}

// exempt lists methods open without a token: health checks and reflection.
func exempt(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") || strings.HasPrefix(method, "/grpc.reflection.")
}

func (s *security) authorize(ctx context.Context, method string) error {
	if s.token == nil || exempt(method) {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return status.Error(codes.Unauthenticated, "missing bearer token: send 'authorization: Bearer <token>' (recoverctl --token-file)")
	}
	got, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), s.token) != 1 {
		return status.Error(codes.PermissionDenied, "bearer token not accepted")
	}
	return nil
}

// verifyPeer checks that the caller of the peer API presented a node
// certificate the cluster CA signed, and returns ctx with the node's id.
func (s *security) verifyPeer(ctx context.Context, method string) (context.Context, error) {
	if s.insecure || strings.HasPrefix(method, "/grpc.health.v1.Health/") {
		return ctx, nil
	}
	var certs []*x509.Certificate
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			certs = ti.State.PeerCertificates
		}
	}
	if len(certs) == 0 {
		return ctx, status.Error(codes.Unauthenticated, "the peer API requires a client certificate signed by the cluster CA (a node's --tls-cert and --tls-key)")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: s.ca, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return ctx, status.Errorf(codes.Unauthenticated, "client certificate %q is not accepted by the cluster CA: %v", certs[0].Subject.CommonName, err)
	}
	id, ok := transfer.NodeID(certs[0])
	if !ok {
		return ctx, status.Errorf(codes.PermissionDenied,
			"certificate %q is not a node certificate: the peer API is for nodes, whose certificates the cluster CA marks with the URI SAN %s (operator certificates may not use it)",
			certs[0].Subject.CommonName, transfer.NodeURI("<node-id>"))
	}
	return transfer.WithPeerIdentity(ctx, id), nil
}

// interceptors check the token before any handler runs, so nothing is read
// or written for a caller that is refused.
func (s *security) interceptors() []grpc.ServerOption {
	return guard(func(ctx context.Context, method string) (context.Context, error) {
		return ctx, s.authorize(ctx, method)
	})
}

// peerInterceptors check the client certificate before any handler runs.
func (s *security) peerInterceptors() []grpc.ServerOption { return guard(s.verifyPeer) }

// guard runs check before every handler; the context it returns (with the
// caller's identity) is the handler's.
func guard(check func(ctx context.Context, method string) (context.Context, error)) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := check(ctx, info.FullMethod)
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, err := check(ss.Context(), info.FullMethod)
			if err != nil {
				return err
			}
			return h(srv, &guardedStream{ServerStream: ss, ctx: ctx})
		}),
	}
}

// guardedStream is a server stream with the context guard's check returned.
type guardedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (g *guardedStream) Context() context.Context { return g.ctx }
