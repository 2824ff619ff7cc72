package integration

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
)

// The data connection (transfer/dataconn.go) spoken by hand, as the wire
// contract says: magic, the source's ack, TLS, a request frame, then
// chunk frames and one end frame. dataFetch returns the end frame's code
// and how many chunk frames came before it.
func dataFetch(t *testing.T, addr string, cfg *tls.Config, req *pb.FetchFileRequest) (codes.Code, int) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := raw.Write([]byte("RCVDDAT1")); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 8)
	if _, err := io.ReadFull(raw, ack); err != nil || string(ack) != "RCVDOK01" {
		t.Fatalf("data connection to %s: ack %q, %v", addr, ack, err)
	}
	conn := net.Conn(raw)
	if cfg != nil {
		cfg = cfg.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
		tc := tls.Client(raw, cfg)
		if err := tc.Handshake(); err != nil {
			t.Fatalf("data connection TLS handshake: %v", err)
		}
		conn = tc
	}
	payload, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	head := []byte{1, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(head[1:], uint32(len(payload)))
	if _, err := conn.Write(append(head, payload...)); err != nil {
		t.Fatal(err)
	}
	chunks := 0
	for {
		if _, err := io.ReadFull(conn, head); err != nil {
			t.Fatalf("data connection: frame head after %d chunks: %v", chunks, err)
		}
		body := make([]byte, binary.BigEndian.Uint32(head[1:]))
		if _, err := io.ReadFull(conn, body); err != nil {
			t.Fatal(err)
		}
		switch head[0] {
		case 2:
			chunks++
		case 3:
			var st spb.Status
			if err := proto.Unmarshal(body, &st); err != nil {
				t.Fatal(err)
			}
			return codes.Code(st.Code), chunks
		default:
			t.Fatalf("data connection: frame of kind %d", head[0])
		}
	}
}
