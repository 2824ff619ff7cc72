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
	"google.golang.org/grpc/status"
)

// security is how the node authenticates: mutual TLS between peers (both
// sides present a certificate signed by the cluster CA), TLS plus a bearer
// token on the control API. Plaintext only with --insecure, and only when
// every listener is on loopback.
type security struct {
	insecure bool
	server   *tls.Config // control listener: server certificate
	peer     *tls.Config // peer listener: server certificate, client certificate required
	dial     *tls.Config // dialing peers: client certificate, server verified
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
		peer: &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
			MinVersion: tls.VersionTLS13},
		dial:  &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13},
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

// interceptors check the token before any handler runs, so nothing is read
// or written for a caller that is refused.
func (s *security) interceptors() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := s.authorize(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := s.authorize(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}
