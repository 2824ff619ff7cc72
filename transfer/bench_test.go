package transfer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/shardstore"
)

// Run: go test -run '^$' -bench . -benchtime 20x ./transfer/
//
// BenchmarkChunkPath moves a whole shard (about 16 MiB in 4 segments) through
// the real path: PeerServer reading the pinned files, CRC32C and (maybe)
// zstd per chunk, gRPC over an in-process connection, chunk checks,
// decompression, writes into staging and the final whole-file Verify
// (fsync included). b.SetBytes is the raw shard size, so MB/s is the
// recovery rate; the wire bytes per op are reported too.
func BenchmarkChunkPath(b *testing.B) {
	for _, data := range []string{"text", "random"} {
		src := newSourceShard(b, b.TempDir(), sourceSpec{docs: 16000, valueSize: 1024, random: data == "random", flushes: 4})
		total := src.Metadata().TotalBytes()
		for _, mode := range []struct {
			name string
			eo   envOpts
			fo   FetchOptions
		}{
			{"zstd", envOpts{}, FetchOptions{}},
			{"raw", envOpts{}, FetchOptions{NoCompression: true}},
			{"zstd/tcp", envOpts{tcp: true}, FetchOptions{}},
			{"raw/tcp", envOpts{tcp: true}, FetchOptions{NoCompression: true}},
		} {
			b.Run(data+"/"+mode.name, func(b *testing.B) {
				e := startEnv(b, src, mode.eo)
				ctx := context.Background()
				pin, info, err := PinCommit(ctx, e.client, testShard, 0, "bench")
				if err != nil {
					b.Fatal(err)
				}
				tgt, err := shardstore.Open(b.TempDir(), testShard, shardstore.Options{Create: true})
				if err != nil {
					b.Fatal(err)
				}
				defer tgt.Close()
				b.SetBytes(total)
				var wire, n int64
				for b.Loop() {
					n++
					i := n
					st, err := startStage(tgt, fmt.Sprintf("rec-%d", i))
					if err != nil {
						b.Fatal(err)
					}
					res, err := FetchFiles(ctx, e.client, testShard, pin, info.Meta.Files, st.Area, mode.fo)
					if err != nil {
						b.Fatal(err)
					}
					wire += res.WireBytes
					if err := st.Abandon(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(wire)/float64(n)/float64(total), "wire/raw")
			})
		}
	}
}

func benchData(kind string, n int) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	if kind == "text" {
		return textValue(r, n)
	}
	return randomValue(r, n)
}

func BenchmarkCRC32C(b *testing.B) {
	buf := benchData("random", DefaultChunkSize)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		CRC32C(buf)
	}
}

func BenchmarkZstd(b *testing.B) {
	enc, err := encoder()
	if err != nil {
		b.Fatal(err)
	}
	dec, err := decoder()
	if err != nil {
		b.Fatal(err)
	}
	for _, kind := range []string{"text", "random"} {
		raw := benchData(kind, DefaultChunkSize)
		comp := enc.EncodeAll(raw, nil)
		b.Run(kind+"/compress", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			dst := make([]byte, 0, len(raw)+1024)
			for b.Loop() {
				dst = enc.EncodeAll(raw, dst[:0])
			}
			b.ReportMetric(float64(len(comp))/float64(len(raw)), "ratio")
		})
		b.Run(kind+"/decompress", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			dst := make([]byte, 0, len(raw))
			for b.Loop() {
				if dst, err = dec.DecodeAll(comp, dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWindows20msRTT fetches the shard over TCP through a proxy that
// delays each direction by 10ms (a 20ms round trip, bandwidth unlimited),
// one file at a time, to show what the flow-control windows buy on a long
// path: the static 4 MiB stream window of DialOptions, gRPC's defaults
// (64 KiB growing by BDP estimation) and a static 1 MiB window.
func BenchmarkWindows20msRTT(b *testing.B) {
	src := newSourceShard(b, b.TempDir(), sourceSpec{docs: 16000, valueSize: 1024, random: true, flushes: 4})
	total := src.Metadata().TotalBytes()
	for _, v := range []struct {
		name string
		s    []grpc.ServerOption
		d    []grpc.DialOption
	}{
		{"static-4MiB", ServerOptions(), DialOptions()},
		{"grpc-defaults", nil, nil},
		{"static-1MiB", []grpc.ServerOption{grpc.StaticStreamWindowSize(1 << 20), grpc.StaticConnWindowSize(4 << 20)},
			[]grpc.DialOption{grpc.WithStaticStreamWindowSize(1 << 20), grpc.WithStaticConnWindowSize(4 << 20)}},
	} {
		b.Run(v.name, func(b *testing.B) {
			srv := NewPeerServer(engineOf(b, src), PeerServerConfig{})
			gs := grpc.NewServer(v.s...)
			pb.RegisterPeerServiceServer(gs, srv)
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go gs.Serve(lis)
			px := startLatencyProxy(b, lis.Addr().String(), 10*time.Millisecond)
			conn, err := grpc.NewClient(px.addr(), append(v.d, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { conn.Close(); gs.Stop(); srv.Close() }()
			c := pb.NewPeerServiceClient(conn)
			ctx := context.Background()
			pin, info, err := PinCommit(ctx, c, testShard, 0, "bench")
			if err != nil {
				b.Fatal(err)
			}
			tgt, err := shardstore.Open(b.TempDir(), testShard, shardstore.Options{Create: true})
			if err != nil {
				b.Fatal(err)
			}
			defer tgt.Close()
			b.SetBytes(total)
			n := 0
			for b.Loop() {
				n++
				st, err := startStage(tgt, fmt.Sprintf("rec-%d", n))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := FetchFiles(ctx, c, testShard, pin, info.Meta.Files, st.Area, FetchOptions{NoCompression: true, Parallel: 1}); err != nil {
					b.Fatal(err)
				}
				if err := st.Abandon(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
