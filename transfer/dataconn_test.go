package transfer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/retry"
	"github.com/recoverd/recoverd/internal/staging"
)

func TestDataConnCarriesTheFiles(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 3000, valueSize: 700, flushes: 3})
	e := startEnv(t, src, envOpts{tcp: true, data: true})
	_, res := recoverAll(t, e, FetchOptions{})
	st := e.srv.Stats()
	if st.DataStreams == 0 || st.DataStreams != st.FileStreams {
		t.Fatalf("%d of %d streams on data connections, want all", st.DataStreams, st.FileStreams)
	}
	if st.FileBytes != res.Bytes || st.FileWireBytes != res.WireBytes {
		t.Errorf("server sent %d raw / %d wire bytes, client got %d / %d", st.FileBytes, st.FileWireBytes, res.Bytes, res.WireBytes)
	}
	if len(res.Summed) != res.Files {
		t.Errorf("%d of %d files compared by their streamed sums", len(res.Summed), res.Files)
	}
}

// The data of a chunk that came on a data connection lands on an aligned
// address: the large files' whole chunks are written past the page cache
// (staging's O_DIRECT), over plaintext and TLS alike, and the copy equals
// the source (recoverAll compares the digests).
func TestDataConnChunksGoDirect(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 1200, valueSize: 10000, random: true, flushes: 2})
	var direct int64 // what may go direct: the files' whole MiB
	for _, f := range src.Metadata().Files {
		if f.Length >= 4<<20 {
			direct += f.Length &^ (1<<20 - 1)
		}
	}
	if direct == 0 {
		t.Fatal("no file of 4 MiB or more")
	}
	ca := newTLSTestCA(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{ca.leaf(t, "source")}, MinVersion: tls.VersionTLS13}
	clientTLS := &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS13}
	for _, tc := range []struct {
		name string
		o    envOpts
	}{
		{"plaintext", envOpts{tcp: true, data: true}},
		{"TLS", envOpts{tcp: true, data: true, serverTLS: serverTLS, clientTLS: clientTLS}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, src, tc.o)
			before := staging.DirectBytes.Load()
			recoverAll(t, e, FetchOptions{})
			if got := staging.DirectBytes.Load() - before; got < direct {
				t.Fatalf("%d bytes written direct, want at least the %d of the large files' whole chunks", got, direct)
			}
		})
	}
}

// A source that does not serve data connections (an older one) closes
// the connection at the magic: the target fetches over gRPC.
func TestDataConnFallsBackToGRPC(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 2000, valueSize: 700, flushes: 2})
	e := startEnv(t, src, envOpts{tcp: true})
	e.client = peerClient{PeerServiceClient: e.client, data: &dataDialer{addr: e.addr}}
	recoverAll(t, e, FetchOptions{})
	if st := e.srv.Stats(); st.DataStreams != 0 || st.FileStreams == 0 {
		t.Fatalf("%d data streams, %d gRPC streams: want the files over gRPC", st.DataStreams, st.FileStreams)
	}
}

func TestDataConnResumesAfterACut(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 8000, valueSize: 1000, random: true, flushes: 2})
	e := startEnv(t, src, envOpts{tcp: true, data: true})
	// Connection 0 is gRPC's (the pin); 1 is the first data connection,
	// cut in its third chunk of 1 MiB.
	px := startProxy(t, e.addr, 0, &proxyFault{conn: 1, at: 5 << 19, kind: faultCut})
	e.client = px.client(t, nil)
	var resumedAt int64 = -1
	_, res := recoverAll(t, e, FetchOptions{ChunkSize: 1 << 20, Retry: retry.Options{Initial: 10 * time.Millisecond},
		OnResume: func(_ string, off int64, _ error) { atomic.CompareAndSwapInt64(&resumedAt, -1, off) }})
	if res.Resumes == 0 || resumedAt != 2<<20 {
		t.Fatalf("resumes %d (first at %d) after a data connection was cut mid-file", res.Resumes, resumedAt)
	}
	if st := e.srv.Stats(); st.DataStreams < 2 {
		t.Fatalf("%d data streams: the resume did not use a data connection", st.DataStreams)
	}
}

func TestDataConnCorruptByteRefetched(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 400, valueSize: 700, random: true})
	e := startEnv(t, src, envOpts{tcp: true, data: true})
	// A byte of the first chunk's data flips on the way.
	px := startProxy(t, e.addr, 0, &proxyFault{conn: 1, at: 3 * MinChunkSize / 2, kind: faultFlip})
	e.client = px.client(t, nil)
	_, res := recoverAll(t, e, FetchOptions{ChunkSize: MinChunkSize, Retry: retry.Options{Initial: time.Millisecond}})
	if res.Resumes != 1 {
		t.Fatalf("resumes %d after a flipped byte, want 1", res.Resumes)
	}
	if !px.faulted.Load() {
		t.Fatal("the proxy flipped nothing")
	}
}

func TestDataConnRefusedCaller(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 500, valueSize: 700})
	refuse := func(ctx context.Context, method string) (context.Context, error) {
		if method != pb.PeerService_FetchFile_FullMethodName {
			t.Errorf("authorized %q", method)
		}
		return ctx, status.Error(codes.PermissionDenied, "test: not a node")
	}
	e := startEnv(t, src, envOpts{tcp: true, data: true, dataCfg: DataConfig{Authorize: refuse}})
	ctx := ctxT(t)
	pin, info, err := PinCommit(ctx, e.client, testShard, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	_, st := newTarget(t, "rec-1")
	_, err = FetchFiles(ctx, e.client, testShard, pin, info.Meta.Files, st.Area, FetchOptions{Retry: retry.Options{Initial: time.Millisecond}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("FetchFiles by a refused caller: %v, want PermissionDenied", err)
	}
	if s := e.srv.Stats(); s.FileBytes != 0 || s.DataStreams != 0 {
		t.Fatalf("a refused caller was sent %d bytes in %d streams", s.FileBytes, s.DataStreams)
	}
}

// Cancelling a fetch closes its data connections: the source stops
// sending and lets go of the pin's use at once.
func TestDataConnCancelStopsTheSource(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 3000, valueSize: 1000, random: true})
	e := startEnv(t, src, envOpts{tcp: true, data: true, cfg: PeerServerConfig{Throttle: NewThrottle(1 << 20)}})
	ctx, cancel := context.WithCancel(ctxT(t))
	pin, info, err := PinCommit(ctx, e.client, testShard, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	_, st := newTarget(t, "rec-1")
	var once sync.Once
	t0 := time.Now()
	_, err = FetchFiles(ctx, e.client, testShard, pin, info.Meta.Files, st.Area, FetchOptions{ChunkSize: MinChunkSize,
		OnBytes: func(string, int64) { once.Do(cancel) }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled fetch: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	// The source counts a chunk once its Send returned, which may be
	// after the target had it and cancelled: let that count land first.
	time.Sleep(200 * time.Millisecond)
	sent := e.srv.Stats().FileBytes
	time.Sleep(500 * time.Millisecond)
	if s := e.srv.Stats(); s.FileBytes != sent {
		t.Fatalf("the source went on sending after the cancel: %d bytes, then %d", sent, s.FileBytes)
	}
	// The pin's use is over: it can be released.
	if err := ReleasePin(ctxT(t), e.client, pin.ID); err != nil {
		t.Fatal(err)
	}
}

func TestDataConnOverMutualTLS(t *testing.T) {
	ca := newTLSTestCA(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{ca.leaf(t, "source")}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS13}
	clientTLS := &tls.Config{Certificates: []tls.Certificate{ca.leaf(t, "target")}, RootCAs: ca.pool, MinVersion: tls.VersionTLS13}
	var seen atomic.Value
	auth := func(ctx context.Context, _ string) (context.Context, error) {
		if p, ok := peer.FromContext(ctx); ok {
			if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
				seen.Store(ti.State.PeerCertificates[0].Subject.CommonName)
				return ctx, nil
			}
		}
		return ctx, status.Error(codes.Unauthenticated, "test: no client certificate")
	}
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 2000, valueSize: 700, flushes: 2})
	e := startEnv(t, src, envOpts{tcp: true, data: true, dataCfg: DataConfig{Authorize: auth}, serverTLS: serverTLS, clientTLS: clientTLS})
	recoverAll(t, e, FetchOptions{})
	if st := e.srv.Stats(); st.DataStreams == 0 {
		t.Fatal("no data stream over TLS")
	}
	if cn, _ := seen.Load().(string); cn != "target" {
		t.Fatalf("the source saw client certificate %q, want target's", cn)
	}
}

// client returns a PeerService client whose gRPC and data connections
// both go through the proxy.
func (p *latencyProxy) client(t *testing.T, cfg *tls.Config) pb.PeerServiceClient {
	creds := insecure.NewCredentials()
	if cfg != nil {
		creds = credentials.NewTLS(cfg)
	}
	conn, err := grpc.NewClient(p.addr(), append(DialOptions(), grpc.WithTransportCredentials(creds))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return peerClient{PeerServiceClient: pb.NewPeerServiceClient(conn), data: &dataDialer{addr: p.addr(), tls: cfg}}
}

// tlsTestCA issues certificates for loopback.
type tlsTestCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTLSTestCA(t *testing.T) *tlsTestCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tlsTestCA{cert: cert, key: key, pool: pool}
}

// leaf is a certificate for cn, valid as server and client on 127.0.0.1.
func (ca *tlsTestCA) leaf(t *testing.T, cn string) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// The source reads no more than maxRequestFrame of a request before it
// knows who asks: a larger one ends the connection.
func TestDataConnRefusesAnOversizedRequest(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 10, valueSize: 100})
	e := startEnv(t, src, envOpts{tcp: true, data: true})
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(dataMagic[:])
	var ack [len(dataAck)]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil || ack != dataAck {
		t.Fatalf("ack %q, %v", ack, err)
	}
	head := make([]byte, frameHeadLen)
	putFrameHead(head, frameRequest, maxRequestFrame+1)
	c.Write(head)
	c.SetDeadline(time.Now().Add(3 * time.Second)) // the source's own deadline is 10s
	n, err := c.Read(make([]byte, 64))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the source answered %d bytes (%v) to a request of %d bytes, want the connection closed", n, err, maxRequestFrame+1)
	}
}

// dialData opens a data connection by hand: the magic, then the ack.
func dialData(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(dataMagic[:])
	var ack [len(dataAck)]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil || ack != dataAck {
		t.Fatalf("ack %q, %v", ack, err)
	}
	c.SetDeadline(time.Time{})
	return c
}

// pinStreams is how many calls are using the pin on srv.
func pinStreams(srv *PeerServer, id string) int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if p := srv.pins[id]; p != nil {
		return p.streams
	}
	return -1
}

// TestDataConnDropsATargetThatStopsReading: a target that stops reading
// without closing its connection (hung, or its network gone) holds the
// source's send only until the write deadline: then the source drops the
// connection and the pin's use ends.
func TestDataConnDropsATargetThatStopsReading(t *testing.T) {
	// One file of about 20 MB: more than the sockets' buffers hold.
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 2000, valueSize: 10000, random: true})
	const writeTimeout = 300 * time.Millisecond
	e := startEnv(t, src, envOpts{tcp: true, data: true, dataCfg: DataConfig{WriteTimeout: writeTimeout}})
	pin, info, err := PinCommit(ctxT(t), e.client, testShard, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	f := info.Meta.Files[0]
	c := dialData(t, e.addr)
	if err := writeMessageFrame(c, frameRequest, &pb.FetchFileRequest{Shard: &pb.ShardId{Index: testShard.Index, Shard: uint32(testShard.Shard)},
		PinId: pin.ID, Name: f.Name, ChunkSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	// Read nothing: the source's writes block once the buffers are full.
	waitFor := func(what string, cond func() bool) time.Time {
		t.Helper()
		for t0 := time.Now(); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Since(t0) > 10*time.Second {
				t.Fatalf("%s: not after %v", what, time.Since(t0))
			}
		}
		return time.Now()
	}
	waitFor("the source sends", func() bool { return e.srv.Stats().FileBytes > 0 })
	var sent int64
	stuck := waitFor("the source's sends block", func() bool {
		n := e.srv.Stats().FileBytes
		same := n == sent
		sent = n
		return same && pinStreams(e.srv, pin.ID) == 1
	})
	dropped := waitFor("the source drops the target", func() bool { return pinStreams(e.srv, pin.ID) == 0 })
	if sent >= f.Length || dropped.Sub(stuck) > writeTimeout+2*time.Second {
		t.Fatalf("sent %d of %d bytes; dropped %v after the sends stopped", sent, f.Length, dropped.Sub(stuck))
	}
	// The connection is closed: the target reads what was buffered, then
	// its end.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading the dropped connection: %v", err)
	}
}

// TestDataConnSilentConnectionGoesToGRPC: a connection that sends nothing
// is handed to gRPC after the sniff timeout (which greets it with its
// HTTP/2 settings and applies its own handshake deadline), not held.
func TestDataConnSilentConnectionGoesToGRPC(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 10, valueSize: 100})
	const sniff = 300 * time.Millisecond
	e := startEnv(t, src, envOpts{tcp: true, data: true, dataCfg: DataConfig{SniffTimeout: sniff}})
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t0 := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	head := make([]byte, 9) // an HTTP/2 frame header
	if _, err := io.ReadFull(c, head); err != nil {
		t.Fatalf("a silent connection got no answer: %v", err)
	}
	if d := time.Since(t0); d < sniff || head[3] != 0x4 { // 0x4: SETTINGS
		t.Fatalf("after %v: frame header %x, want gRPC's SETTINGS after the %v sniff timeout", d, head, sniff)
	}
}
