package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/recoverd/recoverd/api/recoverdv1"
	"github.com/recoverd/recoverd/internal/launch"
	"github.com/recoverd/recoverd/internal/testutil"
)

// The demo runs in both modes and ends with three equal copies; in the
// sidecar mode every node is a shardd and a recoverd --engine beside it.
func TestDemoBothModes(t *testing.T) {
	recoverd, shardd := testutil.Binary(t, "recoverd"), testutil.Binary(t, "shardd")
	for _, mode := range []string{"sidecar", "embedded"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"demo", "-o", "json", "--dir", dir, "--recoverd", recoverd, "--shardd", shardd}
			if mode == "embedded" {
				args = append(args, "--embedded")
			}
			out := spMust(t, args...)
			var rows []demoRow
			if err := json.Unmarshal([]byte(out), &rows); err != nil {
				t.Fatalf("demo output: %v\n%s", err, out)
			}
			if len(rows) != 3 {
				t.Fatalf("want 3 verification rows, got %d:\n%s", len(rows), out)
			}
			// 40,000 docs, 2,000 after the scheduled snapshot, 1,000 on the
			// new primary.
			const last = 40000 + 2000 + 1000 - 1
			for _, r := range rows {
				if r.Digest != rows[0].Digest || r.HistoryUUID != rows[0].HistoryUUID || r.MaxSeqNo != last || r.LocalCheckpoint != last {
					t.Errorf("copy %+v differs from %+v or misses docs", r, rows[0])
				}
			}
			logs, _ := filepath.Glob(filepath.Join(dir, "*-shardd.log"))
			if want := map[string]int{"sidecar": 3, "embedded": 0}[mode]; len(logs) != want {
				t.Errorf("%s mode: %d shardd logs %v, want %d", mode, len(logs), logs, want)
			}
		})
	}
}

// A shard that gen writes is one shardd serves: its documents and
// checkpoints through the document API.
func TestGenShardServedByShardd(t *testing.T) {
	data := filepath.Join(t.TempDir(), "n1")
	spMust(t, "gen", "--data", data, "--index", "logs", "--shard", "3", "--docs", "500", "--flush-every", "100")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sd, err := launch.StartShardd(ctx, launch.SharddOptions{Bin: testutil.Binary(t, "shardd"), Name: "n1", Data: data,
		LogPath: filepath.Join(t.TempDir(), "shardd.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Stop(syscall.SIGTERM, 15*time.Second)
	conn, err := grpc.NewClient(sd.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	docs := pb.NewShardServiceClient(conn)
	id := &pb.ShardId{Index: "logs", Shard: 3}
	st, err := docs.Stats(ctx, &pb.StatsRequest{Shard: id})
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Stats.Seqno; s.MaxSeqno != 499 || s.LocalCheckpoint != 499 {
		t.Errorf("shardd serves max seqno %d, local checkpoint %d; want 499 and 499", s.MaxSeqno, s.LocalCheckpoint)
	}
	for _, key := range []string{"doc-0000000000", "doc-0000000499"} {
		got, err := docs.Get(ctx, &pb.GetRequest{Shard: id, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if !got.Found || len(got.Value) != 256 {
			t.Errorf("Get %s: found %v, %d bytes; want a 256-byte doc", key, got.Found, len(got.Value))
		}
	}
}
