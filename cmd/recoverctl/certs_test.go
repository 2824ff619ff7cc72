package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recoverd/recoverd/transfer"
)

func ctLoad(t *testing.T, dir, name string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	leaf, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return kp, leaf
}

func TestCertsGenerateVerify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	var res certsOutput
	spJSON(t, &res, "certs", "--out", dir, "--nodes", "n1,n2,n3", "--days", "7")
	if len(res.Nodes) != 3 || res.CA != filepath.Join(dir, "ca.pem") || res.Token != filepath.Join(dir, "token") {
		t.Fatalf("output: %+v", res)
	}

	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		_, leaf := ctLoad(t, dir, n)
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			for _, host := range []string{n, "localhost", "127.0.0.1", "::1"} {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
					t.Errorf("%s for %s, usage %v: %v", n, host, usage, err)
				}
			}
		}
		if id, ok := transfer.NodeID(leaf); !ok || id != n {
			t.Errorf("%s is not marked as node %s: URIs %v", n, n, leaf.URIs)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.example"}); err == nil {
			t.Errorf("%s verifies for another host", n)
		}
		if d := time.Until(leaf.NotAfter); d < 6*24*time.Hour || d > 8*24*time.Hour {
			t.Errorf("%s valid for %v, want 7 days", n, d)
		}
	}
	_, client := ctLoad(t, dir, "recoverctl")
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if id, ok := transfer.NodeID(client); ok {
		t.Errorf("the operator certificate is marked as node %s", id)
	}
	if client.Subject.CommonName != "recoverctl" {
		t.Errorf("client CN %q", client.Subject.CommonName)
	}

	// Keys and the token are 0600; the token is 32 random bytes in hex.
	for _, name := range []string{"ca-key.pem", "n1-key.pem", "n2-key.pem", "n3-key.pem", "recoverctl-key.pem", "token"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", name, st.Mode().Perm())
		}
	}
	tok, err := os.ReadFile(res.Token)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := hex.DecodeString(strings.TrimSpace(string(tok))); err != nil || len(b) != 32 {
		t.Errorf("token %q: %v", tok, err)
	}

	// The text output lists the files and example flags, never the token.
	dir2 := filepath.Join(t.TempDir(), "pki")
	out := spMust(t, "certs", "--out", dir2, "--nodes", "n1")
	tok2, _ := os.ReadFile(filepath.Join(dir2, "token"))
	for _, want := range []string{"n1-key.pem", "--tls-cert " + filepath.Join(dir2, "n1.pem"), "--tls-key " + filepath.Join(dir2, "n1-key.pem"),
		"--tls-ca " + filepath.Join(dir2, "ca.pem"), "--token-file " + filepath.Join(dir2, "token")} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, strings.TrimSpace(string(tok2))) {
		t.Error("output shows the token")
	}

	// A second run refuses to overwrite, and writes nothing; --force
	// replaces everything.
	before, _ := os.ReadFile(filepath.Join(dir, "n1.pem"))
	if _, err := spRun(t, "certs", "--out", dir, "--nodes", "n1,n4"); err == nil || spIsUsage(err) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second run without --force: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "n4.pem")); err == nil {
		t.Fatal("a refused run wrote n4.pem")
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "n1.pem")); !bytes.Equal(before, after) {
		t.Fatal("a refused run changed n1.pem")
	}
	spMust(t, "certs", "--out", dir, "--nodes", "n1", "--force")
	if after, _ := os.ReadFile(filepath.Join(dir, "n1.pem")); bytes.Equal(before, after) {
		t.Fatal("--force did not replace n1.pem")
	}
	if st, _ := os.Stat(filepath.Join(dir, "n1-key.pem")); st.Mode().Perm() != 0o600 {
		t.Errorf("replaced key has mode %v", st.Mode().Perm())
	}
}

// TestCertsMutualTLS runs a real handshake on loopback: n1 serves and
// requires a client certificate of the CA, n2 dials.
func TestCertsMutualTLS(t *testing.T) {
	dir := t.TempDir()
	spMust(t, "certs", "--out", dir, "--nodes", "n1,n2")
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	n1, _ := ctLoad(t, dir, "n1")
	n2, _ := ctLoad(t, dir, "n2")

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{n1}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			peer <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			peer <- "handshake: " + err.Error()
			return
		}
		peer <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
		io.Copy(io.Discard, c)
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{Certificates: []tls.Certificate{n2}, RootCAs: pool,
		ServerName: "n1", MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := <-peer; got != "n2" {
		t.Fatalf("server saw %q", got)
	}

	// A certificate of another CA is refused.
	other := t.TempDir()
	spMust(t, "certs", "--out", other, "--nodes", "n2")
	stranger, _ := ctLoad(t, other, "n2")
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	c2, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{Certificates: []tls.Certificate{stranger}, RootCAs: pool,
		ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})
	if err == nil {
		// TLS 1.3: the client learns of the refusal on its first read.
		c2.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c2.Read(make([]byte, 1))
		c2.Close()
	}
	if err == nil || ctIsTimeout(err) {
		t.Fatalf("a certificate of another CA was accepted: %v", err)
	}
}

func ctIsTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestCertsUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"certs", "--nodes", "n1"},
		{"certs", "--out", dir},
		{"certs", "--out", dir, "--nodes", ""},
		{"certs", "--out", dir, "--nodes", "n1,n1"},
		{"certs", "--out", dir, "--nodes", "ca"},
		{"certs", "--out", dir, "--nodes", "../n1"},
		{"certs", "--out", dir, "--nodes", "n1", "--days", "0"},
	} {
		if _, err := spRun(t, args...); !spIsUsage(err) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("usage errors wrote files: %v", entries)
	}
}
