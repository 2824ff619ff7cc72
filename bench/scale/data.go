package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/recoverd/recoverd/internal/testutil"
	"github.com/recoverd/recoverd/shardstore"
)

// generate writes n shards of 50 documents of 100 bytes under data (ids
// ixNNN/M, 100 shards per index), unless a complete set is there.
func generate(data string, n int) error {
	done := filepath.Join(data, ".scale-complete")
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	tmpl, err := os.MkdirTemp("", "scale-template")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpl)
	s, err := shardstore.Open(tmpl, shardstore.ShardID{Index: "tmpl", Shard: 0}, shardstore.Options{Create: true})
	if err != nil {
		return err
	}
	docs := make([]shardstore.Doc, 50)
	for i := range docs {
		docs[i] = shardstore.Doc{Key: fmt.Sprintf("doc-%02d", i), Value: []byte(strings.Repeat("v", 100))}
	}
	if _, err := s.IndexBatch(context.Background(), docs); err != nil {
		return err
	}
	if err := s.Flush(); err != nil {
		return err
	}
	src := s.Path()
	if err := s.Close(); err != nil {
		return err
	}
	start := time.Now()
	for i := range n {
		if err := testutil.CopyTree(src, shardstore.Dir(data, shardID(i))); err != nil {
			return err
		}
	}
	log.Printf("wrote %d shards in %v", n, time.Since(start).Round(time.Second))
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		return fmt.Errorf("sync: %v: %s", err, out)
	}
	return os.WriteFile(done, nil, 0o644)
}

func shardID(i int) shardstore.ShardID {
	return shardstore.ShardID{Index: fmt.Sprintf("ix%03d", i/100), Shard: i % 100}
}

func duSize(dir string) float64 {
	out, err := exec.Command("du", "-sm", dir).Output()
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(out))[0], 64)
	return f
}
