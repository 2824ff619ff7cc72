package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// pki is case 8's throwaway cluster: the CA, the node certificates of
// "source" and "target" (marked recoverd://node/<name>, as the peer API
// requires), the operator's client certificate and the bearer token, made
// by `recoverctl certs` as the README's production setup shows. A nil
// *pki is the plaintext setup (--insecure) of the other cases.
type pki struct {
	dir, token string
	creds      credentials.TransportCredentials
}

// newPKI runs `recoverctl certs` into <work>/run/pki.
func (b *bench) newPKI(ctx context.Context) (*pki, error) {
	p := &pki{dir: filepath.Join(b.work, "run", "pki")}
	os.RemoveAll(p.dir)
	if out, err := exec.CommandContext(ctx, b.recoverctl, "certs", "--out", p.dir, "--nodes", "source,target", "--days", "1").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("recoverctl certs: %w: %s", err, out)
	}
	tok, err := os.ReadFile(p.file("token"))
	if err != nil {
		return nil, err
	}
	p.token = strings.TrimSpace(string(tok))
	ca, err := os.ReadFile(p.file("ca.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no certificate", p.file("ca.pem"))
	}
	client, err := tls.LoadX509KeyPair(p.file("recoverctl.pem"), p.file("recoverctl-key.pem"))
	if err != nil {
		return nil, err
	}
	p.creds = credentials.NewTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}, MinVersion: tls.VersionTLS13})
	return p, nil
}

func (p *pki) file(name string) string { return filepath.Join(p.dir, name) }

// nodeArgs are the README's production TLS flags of node name.
func (p *pki) nodeArgs(name string) []string {
	if p == nil {
		return nil
	}
	return []string{"--tls-cert", p.file(name + ".pem"), "--tls-key", p.file(name + "-key.pem"),
		"--tls-ca", p.file("ca.pem"), "--token-file", p.file("token")}
}

// dialOptions are how the bench reaches a node's control API: as
// recoverctl does, TLS with the operator certificate and the bearer token.
func (p *pki) dialOptions() []grpc.DialOption {
	if p == nil {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(p.creds), grpc.WithPerRPCCredentials(bearer(p.token))}
}

// bearer sends the token on every call, over TLS only.
type bearer string

func (t bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}
func (bearer) RequireTransportSecurity() bool { return true }
