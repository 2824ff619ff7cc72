package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/transfer"
)

// certs: a throw-away cluster CA, node and client certificates and a bearer
// token, for tests and demos of mutual TLS (DESIGN.md section 7).

// certsFile is one file certs writes.
type certsFile struct {
	Path string      `json:"path"`
	Mode fs.FileMode `json:"-"`
	Perm string      `json:"mode"` // "0600"
	What string      `json:"what"`

	data []byte
}

type certsNode struct {
	Name string `json:"name"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

type certsOutput struct {
	Dir      string      `json:"dir"`
	CA       string      `json:"ca"`
	Nodes    []certsNode `json:"nodes"`
	Client   certsNode   `json:"client"`
	Token    string      `json:"token_file"`
	NotAfter time.Time   `json:"not_after"`
	Files    []certsFile `json:"files"`
	// Flags are example command lines using the files.
	Flags []string `json:"flags"`
}

// certsReserved are names a node cannot have: their files would collide
// with the CA's or the client's.
var certsReserved = map[string]bool{"ca": true, "recoverctl": true, "token": true}

func newCertsCmd(g *globalFlags) *cobra.Command {
	var (
		out, nodes string
		days       int
		force      bool
	)
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Create a test cluster CA, node and client certificates and a bearer token",
		Long: `certs creates, in --out:

  ca.pem, ca-key.pem                a cluster CA (ECDSA P-256)
  <node>.pem, <node>-key.pem        per node: a certificate for both server and
                                    client auth (mutual TLS between peers), with
                                    SANs 127.0.0.1, ::1, localhost and the node name,
                                    marked as a node's by the URI SAN
                                    recoverd://node/<node>
  recoverctl.pem, recoverctl-key.pem a client certificate for recoverctl (an
                                    operator's: without the node mark, so the
                                    peer API refuses it)
  token                             a random 32-byte bearer token, hex

Keys and the token are written 0600. Existing files are never overwritten
unless --force. This is for tests and demos: a production cluster takes its
certificates from its own PKI, which must mark node certificates with the
URI SAN recoverd://node/<node-id> (the peer API accepts only those).`,
		Example: `  recoverctl certs --out /tmp/pki --nodes n1,n2,n3
  recoverctl certs --out /tmp/pki --nodes n1,n2 --days 7 --force
  recoverd --data /tmp/n1 --node-id n1 --tls-cert /tmp/pki/n1.pem --tls-key /tmp/pki/n1-key.pem \
      --tls-ca /tmp/pki/ca.pem --token-file /tmp/pki/token`,
		Args: snapUsageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if days <= 0 || days > 3650 {
				return usagef("--days must be 1 to 3650, got %d", days)
			}
			names, err := certsParseNodes(nodes)
			if err != nil {
				return err
			}
			dir, err := filepath.Abs(out)
			if err != nil {
				return usagef("--out: %v", err)
			}
			res, err := certsGenerate(dir, names, days, time.Now())
			if err != nil {
				return err
			}
			if err := certsWrite(res.Files, force); err != nil {
				return err
			}
			return emit(cmd, g, res, func(w io.Writer) {
				fmt.Fprintf(w, "wrote %d files to %s (valid until %s):\n", len(res.Files), res.Dir, res.NotAfter.UTC().Format(time.RFC3339))
				for _, f := range res.Files {
					fmt.Fprintf(w, "  %s  %-20s %s\n", f.Mode, filepath.Base(f.Path), f.What)
				}
				fmt.Fprintln(w, "\nexample flags:")
				for _, l := range res.Flags {
					fmt.Fprintf(w, "  %s\n", l)
				}
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write into, created if missing (required)")
	cmd.Flags().StringVar(&nodes, "nodes", "", "comma-separated node names, e.g. n1,n2,n3 (required)")
	cmd.Flags().IntVar(&days, "days", 30, "validity of every certificate, in days")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing files")
	markRequired(cmd, "out", "nodes")
	return cmd
}

func certsParseNodes(s string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if len(n) > 63 || n[0] == '-' || n[0] == '.' || strings.ContainsFunc(n, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.')
		}) {
			return nil, usagef("--nodes: %q is not a node name (letters, digits, '-' and '.', at most 63, usable as a host name)", n)
		}
		if certsReserved[strings.ToLower(n)] {
			return nil, usagef("--nodes: %q is reserved (its files would collide with the CA, client or token files)", n)
		}
		if seen[n] {
			return nil, usagef("--nodes: %q given twice", n)
		}
		seen[n] = true
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil, usagef("--nodes: give at least one node name")
	}
	return names, nil
}

func certsSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func certsPEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func certsKeyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return certsPEM("PRIVATE KEY", der), nil
}

// certsGenerate makes every key, certificate and the token in memory.
func certsGenerate(dir string, nodes []string, days int, now time.Time) (*certsOutput, error) {
	notBefore := now.Add(-5 * time.Minute) // some clock skew between nodes
	notAfter := now.Add(time.Duration(days) * 24 * time.Hour)
	res := &certsOutput{Dir: dir, NotAfter: notAfter, Nodes: []certsNode{}}
	add := func(name string, mode fs.FileMode, what string, data []byte) string {
		p := filepath.Join(dir, name)
		res.Files = append(res.Files, certsFile{Path: p, Mode: mode, Perm: fmt.Sprintf("%04o", mode.Perm()), What: what, data: data})
		return p
	}

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := certsSerial()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "recoverd test cluster CA", Organization: []string{"recoverd"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	caKeyPEM, err := certsKeyPEM(caKey)
	if err != nil {
		return nil, err
	}
	res.CA = add("ca.pem", 0o644, "cluster CA certificate", certsPEM("CERTIFICATE", caDER))
	add("ca-key.pem", 0o600, "cluster CA key (keep it, or delete it once the certificates are made)", caKeyPEM)

	leaf := func(cn string, usages []x509.ExtKeyUsage, dns []string, ips []net.IP, uris []*url.URL) (certPEM, keyPEM []byte, err error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		serial, err := certsSerial()
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial,
			Subject:               pkix.Name{CommonName: cn, Organization: []string{"recoverd"}},
			NotBefore:             notBefore,
			NotAfter:              notAfter,
			KeyUsage:              x509.KeyUsageDigitalSignature,
			ExtKeyUsage:           usages,
			BasicConstraintsValid: true,
			DNSNames:              dns,
			IPAddresses:           ips,
			URIs:                  uris,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, fmt.Errorf("create certificate %s: %w", cn, err)
		}
		keyPEM, err = certsKeyPEM(key)
		return certsPEM("CERTIFICATE", der), keyPEM, err
	}

	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, n := range nodes {
		dns := []string{"localhost"}
		ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else if n != "localhost" {
			dns = append(dns, n)
		}
		c, k, err := leaf(n, both, dns, ips, []*url.URL{transfer.NodeURI(n)})
		if err != nil {
			return nil, err
		}
		res.Nodes = append(res.Nodes, certsNode{
			Name: n,
			Cert: add(n+".pem", 0o644, "node "+n+": server and client certificate, marked "+transfer.NodeURI(n).String(), c),
			Key:  add(n+"-key.pem", 0o600, "node "+n+": key", k),
		})
	}
	c, k, err := leaf("recoverctl", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	res.Client = certsNode{Name: "recoverctl",
		Cert: add("recoverctl.pem", 0o644, "recoverctl: operator client certificate (not accepted on the peer API)", c),
		Key:  add("recoverctl-key.pem", 0o600, "recoverctl: key", k),
	}

	var tok [32]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	res.Token = add("token", 0o600, "bearer token of the control API (32 random bytes, hex)", []byte(hex.EncodeToString(tok[:])+"\n"))

	for _, n := range res.Nodes {
		res.Flags = append(res.Flags, fmt.Sprintf("recoverd --node-id %s --tls-cert %s --tls-key %s --tls-ca %s --token-file %s",
			n.Name, n.Cert, n.Key, res.CA, res.Token))
	}
	res.Flags = append(res.Flags, fmt.Sprintf("recoverctl --tls-ca %s --token-file %s --tls-cert %s --tls-key %s",
		res.CA, res.Token, res.Client.Cert, res.Client.Key))
	return res, nil
}

// certsWrite writes every file durably with its mode. Without force it
// refuses, before writing anything, when any of them exists, and never
// replaces a file that appears meanwhile (link(2) does not overwrite).
func certsWrite(files []certsFile, force bool) error {
	if len(files) == 0 {
		return nil
	}
	dir := filepath.Dir(files[0].Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if !force {
		var exist []string
		for _, f := range files {
			if _, err := os.Lstat(f.Path); err == nil {
				exist = append(exist, filepath.Base(f.Path))
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if len(exist) > 0 {
			return fmt.Errorf("%s already holds %s: nothing written; use --force to replace them", dir, strings.Join(exist, ", "))
		}
	}
	for _, f := range files {
		if err := certsWriteFile(f, force); err != nil {
			return err
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func certsWriteFile(f certsFile, force bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), ".certs-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name)
	// CreateTemp makes the file 0600: a key is never readable by others,
	// not even for a moment.
	err = tmp.Chmod(f.Mode)
	if err == nil {
		_, err = tmp.Write(f.data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	if force {
		return os.Rename(name, f.Path)
	}
	if err := os.Link(name, f.Path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s appeared while writing: not replaced (use --force)", f.Path)
		}
		return err
	}
	return nil
}
