package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/recoverd/recoverd/transfer"
)

// testCA is a throw-away certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a node certificate for server and client auth on loopback,
// marked recoverd://node/<cn>.
func (ca *testCA) issue(t *testing.T, cn string) (certPEM, keyPEM []byte, leaf *x509.Certificate) {
	t.Helper()
	return ca.issueLeaf(t, cn, []*url.URL{transfer.NodeURI(cn)})
}

// issueLeaf returns a leaf for server and client auth on loopback with the
// given URI SANs.
func (ca *testCA) issueLeaf(t *testing.T, cn string, uris []*url.URL) (certPEM, keyPEM []byte, leaf *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}, URIs: uris}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), leaf
}

// secureConfig writes a CA, a node certificate and a token into a temp
// dir and returns a Config using them.
func secureConfig(t *testing.T, ca *testCA) Config {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM, _ := ca.issue(t, "n1")
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := defaultConfig()
	cfg.TLSCA = write("ca.pem", ca.pem)
	cfg.TLSCert = write("n1.pem", certPEM)
	cfg.TLSKey = write("n1-key.pem", keyPEM)
	cfg.TokenFile = write("token", []byte("0123456789abcdef0123456789abcdef\n"))
	return cfg
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7400": true, "[::1]:7400": true, "localhost:1": true, "127.1.2.3:9": true,
		"0.0.0.0:7400": false, ":7400": false, "[::]:1": false, "10.0.0.5:7400": false, "example.com:1": false, "127.0.0.1": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestLoadSecurityRules(t *testing.T) {
	ca := newTestCA(t, "cluster")
	good := secureConfig(t, ca)

	insecure := defaultConfig()
	insecure.Insecure = true
	if sec, err := loadSecurity(insecure); err != nil || !sec.insecure {
		t.Fatalf("--insecure on loopback: %v", err)
	}
	for _, field := range []func(*Config) *string{
		func(c *Config) *string { return &c.GRPCAddr }, func(c *Config) *string { return &c.PeerAddr },
		func(c *Config) *string { return &c.HTTPAddr },
	} {
		c := insecure
		*field(&c) = "0.0.0.0:7409"
		if _, err := loadSecurity(c); err == nil || !strings.Contains(err.Error(), "refused on 0.0.0.0:7409") {
			t.Errorf("--insecure on 0.0.0.0 not refused: %v", err)
		}
	}

	if sec, err := loadSecurity(good); err != nil || sec.insecure || string(sec.token) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("TLS config: %v", err)
	}
	bad := map[string]func(c *Config){
		"no TLS flags":   func(c *Config) { *c = defaultConfig() },
		"no token file":  func(c *Config) { c.TokenFile = "" },
		"short token":    func(c *Config) { os.WriteFile(c.TokenFile+".short", []byte("abc"), 0o600); c.TokenFile += ".short" },
		"missing key":    func(c *Config) { c.TLSKey = filepath.Join(t.TempDir(), "nope") },
		"CA without PEM": func(c *Config) { c.TLSCA = c.TokenFile },
	}
	for name, mutate := range bad {
		c := good
		mutate(&c)
		if _, err := loadSecurity(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestControlTokenCodes(t *testing.T) {
	sec, err := loadSecurity(secureConfig(t, newTestCA(t, "cluster")))
	if err != nil {
		t.Fatal(err)
	}
	withToken := func(v string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", v))
	}
	const method = "/recoverd.v1.ShardService/Index"
	cases := []struct {
		name string
		ctx  context.Context
		code codes.Code
	}{
		{"no token", context.Background(), codes.Unauthenticated},
		{"wrong token", withToken("Bearer 0123456789abcdef0123456789abcdeX"), codes.PermissionDenied},
		{"not bearer", withToken("Basic 0123456789abcdef0123456789abcdef"), codes.PermissionDenied},
		{"right token", withToken("Bearer 0123456789abcdef0123456789abcdef"), codes.OK},
	}
	for _, c := range cases {
		if got := status.Code(sec.authorize(c.ctx, method)); got != c.code {
			t.Errorf("%s: %v, want %v", c.name, got, c.code)
		}
	}
	if err := sec.authorize(context.Background(), "/grpc.health.v1.Health/Check"); err != nil {
		t.Errorf("health check needs a token: %v", err)
	}
}

func TestPeerCertificateCodes(t *testing.T) {
	ca, rogue := newTestCA(t, "cluster"), newTestCA(t, "rogue")
	sec, err := loadSecurity(secureConfig(t, ca))
	if err != nil {
		t.Fatal(err)
	}
	if sec.peer.ClientAuth != tls.RequestClientCert {
		t.Fatalf("peer listener ClientAuth %v", sec.peer.ClientAuth)
	}
	_, _, good := ca.issue(t, "n2")
	_, _, foreign := rogue.issue(t, "n2")
	_, _, operator := ca.issueLeaf(t, "recoverctl", nil)
	_, _, otherMark := ca.issueLeaf(t, "n3", []*url.URL{{Scheme: "spiffe", Host: "node", Path: "/n3"}, {Scheme: "recoverd", Host: "operator", Path: "/n3"}})
	withCerts := func(certs ...*x509.Certificate) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: certs}}})
	}
	const method = "/recoverd.v1.PeerService/FetchFile"
	for name, c := range map[string]struct {
		ctx  context.Context
		code codes.Code
	}{
		"no peer info":        {context.Background(), codes.Unauthenticated},
		"no certificate":      {withCerts(), codes.Unauthenticated},
		"another CA's":        {withCerts(foreign), codes.Unauthenticated},
		"the cluster CA's":    {withCerts(good), codes.OK},
		"the CA itself as ID": {withCerts(rogue.cert), codes.Unauthenticated},
		"an operator's":       {withCerts(operator), codes.PermissionDenied},
		"another mark":        {withCerts(otherMark), codes.PermissionDenied},
	} {
		ctx, err := sec.verifyPeer(c.ctx, method)
		if got := status.Code(err); got != c.code {
			t.Errorf("%s: %v, want %v", name, got, c.code)
		}
		if want := map[bool]string{true: "n2"}[c.code == codes.OK]; transfer.PeerIdentity(ctx) != want {
			t.Errorf("%s: identity %q, want %q", name, transfer.PeerIdentity(ctx), want)
		}
	}
	if _, err := sec.verifyPeer(context.Background(), "/grpc.health.v1.Health/Check"); err != nil {
		t.Errorf("health check needs a certificate: %v", err)
	}
}
