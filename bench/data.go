package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/recoverd/recoverd/shardstore"
)

// The shard every case moves: index "bench", shard 0.
var benchID = shardstore.ShardID{Index: "bench", Shard: 0}

// dataset is a node data directory holding shard bench/0, generated once
// and reused by later runs while its spec is unchanged.
type dataset struct {
	name  string
	dir   string // node data directory
	bytes int64  // bytes of the files in the commit
	files int
}

func (d *dataset) shardDir() string { return shardstore.Dir(d.dir, benchID) }

// genSpec is one `recoverctl gen` invocation.
type genSpec struct {
	docs, docSize, flushEvery int
	content                   string
}

func (g genSpec) String() string {
	return fmt.Sprintf("gen docs=%d doc-size=%d flush-every=%d content=%s", g.docs, g.docSize, g.flushEvery, g.content)
}

// prepare returns the dataset name, building it with build when its
// directory does not hold one made from the same spec.
func (b *bench) prepare(name, spec string, build func(dir string) error) (*dataset, error) {
	dir, err := b.prepareDir(name, spec, build)
	if err != nil {
		return nil, err
	}
	return loadDataset(name, dir)
}

func loadDataset(name, dir string) (*dataset, error) {
	md, err := shardstore.ReadMetadata(dir, benchID)
	if err != nil {
		return nil, fmt.Errorf("data set %s: %w", name, err)
	}
	return &dataset{name: name, dir: dir, bytes: md.TotalBytes(), files: len(md.Files)}, nil
}

// prepareDir builds <work>/data/<name> with build unless it was built from
// the same spec before (a marker file records the spec, written last).
func (b *bench) prepareDir(name, spec string, build func(dir string) error) (string, error) {
	dir := filepath.Join(b.work, "data", name)
	marker := filepath.Join(b.work, "data", name+".spec")
	if old, err := os.ReadFile(marker); err != nil || string(old) != spec {
		b.logf("generating data set %s (%s)", name, spec)
		os.Remove(marker)
		if err := os.RemoveAll(dir); err != nil {
			return "", err
		}
		tmp := dir + ".tmp"
		os.RemoveAll(tmp)
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return "", err
		}
		if err := build(tmp); err != nil {
			return "", fmt.Errorf("data set %s: %w", name, err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			return "", err
		}
		if err := os.WriteFile(marker, []byte(spec), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func (b *bench) gen(ctx context.Context, dir string, g genSpec) error {
	cmd := exec.CommandContext(ctx, b.recoverctl, "gen", "--data", dir, "--index", benchID.Index, "--shard", "0",
		"--docs", strconv.Itoa(g.docs), "--doc-size", strconv.Itoa(g.docSize), "--flush-every", strconv.Itoa(g.flushEvery),
		"--content", g.content)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("recoverctl gen: %v\n%s", err, out)
	}
	b.logf("  %s", strings.TrimSpace(string(out)))
	return nil
}

// copyFile copies an executable.
func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// copyTree copies a directory with cp -a (preserving the layout exactly).
func copyTree(ctx context.Context, src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
	return nil
}

// bigSpec is the "2 GiB shard of 64 x 32 MiB files": 32 KiB docs, a
// segment every 1,024 docs.
func (b *bench) bigSpec(content string, mib int) genSpec {
	return genSpec{docs: max(1024, mib*32), docSize: 32 << 10, flushEvery: 1024, content: content}
}

// bigShard: case 1, and the old primary of the failover case.
func (b *bench) bigShard(ctx context.Context) (*dataset, error) {
	g := b.bigSpec("random", b.cfg.shardMiB)
	return b.prepare("big", g.String()+" global-checkpoint=max", func(dir string) error {
		if err := b.gen(ctx, dir, g); err != nil {
			return err
		}
		// Every copy acknowledged every op (the replica of the failover
		// case holds them all): the primary records its global checkpoint,
		// so a snapshot of it is a valid start for the new primary's copy.
		s, err := shardstore.Open(dir, benchID, shardstore.Options{})
		if err != nil {
			return err
		}
		s.SetGlobalCheckpoint(s.Stats().Seq.LocalCheckpoint)
		if err := s.Flush(); err != nil {
			s.Close()
			return err
		}
		return s.Close()
	})
}

// smallFiles: the same kind of bytes as one file per 100 KiB document.
// gen writes them with a segment every 1,000 docs (a flush per doc would
// rewrite a commit listing every file 20,000 times); a merge bounded to one
// doc per output segment then lays them out as one file each, published in
// a single commit, exactly what the shard would hold had it flushed every doc.
func (b *bench) smallFiles(ctx context.Context) (*dataset, error) {
	g := genSpec{docs: b.cfg.smallFiles, docSize: b.cfg.smallKiB << 10, flushEvery: 1000, content: "random"}
	return b.prepare("small", g.String()+" relayout=one-doc-per-file", func(dir string) error {
		if err := b.gen(ctx, dir, g); err != nil {
			return err
		}
		s, err := shardstore.Open(dir, benchID, shardstore.Options{MaxSegmentBytes: 1})
		if err != nil {
			return err
		}
		if err := s.Merge(); err != nil {
			s.Close()
			return err
		}
		return s.Close()
	})
}

// failoverSource is the new primary after a failover: the same documents
// and seqnos as bigShard (same history UUID) in other physical files (a
// merge rewrote them into 256 MiB segments), promoted to the next term.
// bigShard plays the old primary whose snapshot is in the repository.
func (b *bench) failoverSource(ctx context.Context, big *dataset) (*dataset, error) {
	md, err := shardstore.ReadMetadata(big.dir, benchID)
	if err != nil {
		return nil, err
	}
	spec := fmt.Sprintf("copy of history %s at seqno %d, merged, promoted", md.Commit.HistoryUUID, md.Commit.MaxSeqNo)
	return b.prepare("failover", spec, func(dir string) error {
		os.Remove(dir)
		if err := copyTree(ctx, big.dir, dir); err != nil {
			return err
		}
		s, err := shardstore.Open(dir, benchID, shardstore.Options{})
		if err != nil {
			return err
		}
		if err := s.Merge(); err != nil {
			s.Close()
			return err
		}
		if err := s.Promote(); err != nil {
			s.Close()
			return err
		}
		return s.Close()
	})
}

// compressData: a shard of text-like (compressible) or random values.
func (b *bench) compressData(ctx context.Context, content string) (*dataset, error) {
	g := b.bigSpec(content, b.cfg.compressMiB)
	return b.prepare("compress-"+content, g.String(), func(dir string) error { return b.gen(ctx, dir, g) })
}

// opsData builds a source whose op log holds cfg.ops ops above a commit
// the target already has: base/ is the source, target/ the target's copy
// from before those ops (same history, checkpoint at the base).
func (b *bench) opsData(ctx context.Context) (src, tgt *dataset, err error) {
	const baseDocs, valueSize, batch = 1000, 100, 5000
	spec := fmt.Sprintf("ops=%d base=%d value=%d retain=%d", b.cfg.ops, baseDocs, valueSize, b.retainOps())
	root, err := b.prepareDir("ops", spec, func(dir string) error {
		srcDir := filepath.Join(dir, "source")
		opts := shardstore.Options{Create: true, RetainOps: b.retainOps()}
		s, err := shardstore.Open(srcDir, benchID, opts)
		if err != nil {
			return err
		}
		write := func(n int, prefix string) error {
			docs := make([]shardstore.Doc, 0, batch)
			for i := 0; i < n; {
				docs = docs[:0]
				for ; len(docs) < batch && i < n; i++ {
					docs = append(docs, shardstore.Doc{Key: fmt.Sprintf("%s-%09d", prefix, i), Value: []byte(strings.Repeat("v", valueSize))})
				}
				if _, err := s.IndexBatch(ctx, docs); err != nil {
					return err
				}
			}
			return s.Flush()
		}
		if err := write(baseDocs, "base"); err != nil {
			s.Close()
			return err
		}
		if err := s.Close(); err != nil {
			return err
		}
		if err := copyTree(ctx, srcDir, filepath.Join(dir, "target")); err != nil {
			return err
		}
		if s, err = shardstore.Open(srcDir, benchID, opts); err != nil {
			return err
		}
		if err := write(b.cfg.ops, "op"); err != nil {
			s.Close()
			return err
		}
		return s.Close()
	})
	if err != nil {
		return nil, nil, err
	}
	if src, err = loadDataset("ops-source", filepath.Join(root, "source")); err != nil {
		return nil, nil, err
	}
	if tgt, err = loadDataset("ops-target", filepath.Join(root, "target")); err != nil {
		return nil, nil, err
	}
	return src, tgt, nil
}

// retainOps is what the ops source keeps in its op log: every op above
// the target's checkpoint.
func (b *bench) retainOps() int64 { return int64(b.cfg.ops) + 100000 }
