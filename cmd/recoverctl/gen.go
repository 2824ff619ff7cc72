package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoverd/recoverd/shardstore"
)

type genResult struct {
	Shard      string           `json:"shard"`
	Docs       int              `json:"docs"`
	Bytes      int64            `json:"bytes"`
	Seconds    float64          `json:"seconds"`
	OpsPerSec  float64          `json:"ops_per_sec"`
	Stats      shardstore.Stats `json:"stats"`
	Segments   int              `json:"segments"`
	FilesBytes int64            `json:"files_bytes"`
}

func newGenCmd(g *globalFlags) *cobra.Command {
	var (
		data, index, content   string
		shard, docs, docSize   int
		flushEvery, batch      int
		merge                  bool
		seed                   uint64
		keySpace, deleteEveryN int
	)
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Write a shard through the engine (for tests, the demo and benchmarks)",
		Long: `gen writes a shard offline into --data with the reference engine
(shardstore): the directory is then one shardd (the sidecar mode) or an
embedded recoverd opens at start. The shard is locked while gen writes:
stop the process that holds --data first.`,
		Example: `  # 10,000 docs of 1 KiB, a segment every 1,000 docs
  recoverctl gen --data /tmp/n1 --index logs --shard 0 --docs 10000 --doc-size 1024 --flush-every 1000

  # 64 segments of about 32 MiB each, text-like values
  recoverctl gen --data /tmp/n1 --index big --docs 65536 --doc-size 32768 --flush-every 1024 --content text`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if docs < 0 || docSize < 0 || flushEvery < 0 || batch <= 0 {
				return usagef("--docs, --doc-size and --flush-every must be >= 0 and --batch > 0")
			}
			if content != "random" && content != "text" {
				return usagef("--content must be random or text, got %q", content)
			}
			id := shardstore.ShardID{Index: index, Shard: shard}
			if err := id.Validate(); err != nil {
				return usageError{err}
			}
			s, err := shardstore.Open(data, id, shardstore.Options{Create: true})
			if err != nil {
				return err
			}
			defer s.Close()
			start := time.Now()
			res, err := generate(cmd.Context(), s, genSpec{docs: docs, docSize: docSize, flushEvery: flushEvery, batch: batch,
				text: content == "text", seed: seed, keySpace: keySpace, deleteEvery: deleteEveryN})
			if err != nil {
				return err
			}
			if merge {
				if err := s.Merge(); err != nil {
					return err
				}
			} else if err := s.Flush(); err != nil {
				return err
			}
			res.Seconds = time.Since(start).Seconds()
			res.OpsPerSec = float64(res.Docs) / res.Seconds
			res.Shard = id.String()
			res.Stats = s.Stats()
			md := s.Metadata()
			res.Segments, res.FilesBytes = len(md.Files), md.TotalBytes()
			return emit(cmd, g, res, func(w io.Writer) {
				fmt.Fprintf(w, "wrote %d docs (%s) to %s in %.2fs (%.0f ops/s): %d segments, %s on disk, %v\n",
					res.Docs, humanBytes(res.Bytes), res.Shard, res.Seconds, res.OpsPerSec, res.Segments, humanBytes(res.FilesBytes), res.Stats.Seq)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "data directory of the node (required)")
	f.StringVar(&index, "index", "", "index name (required)")
	f.IntVar(&shard, "shard", 0, "shard number")
	f.IntVar(&docs, "docs", 1000, "number of documents to index")
	f.IntVar(&docSize, "doc-size", 256, "bytes per document value")
	f.IntVar(&flushEvery, "flush-every", 0, "flush a segment every K docs (0: once at the end)")
	f.IntVar(&batch, "batch", 500, "docs per durable batch (one fsync each)")
	f.BoolVar(&merge, "merge", false, "merge all segments at the end")
	f.StringVar(&content, "content", "random", "value content: random (incompressible) or text (compressible)")
	f.Uint64Var(&seed, "seed", 1, "random seed")
	f.IntVar(&keySpace, "key-space", 0, "draw keys from this many distinct keys (0: every doc a new key)")
	f.IntVar(&deleteEveryN, "delete-every", 0, "delete a random key every N docs (0: never)")
	markRequired(cmd, "data", "index")
	return cmd
}

type genSpec struct {
	docs, docSize, flushEvery, batch int
	text                             bool
	seed                             uint64
	keySpace, deleteEvery            int
}

var words = []string{"recover", "shard", "segment", "replica", "primary", "snapshot", "checkpoint", "lease", "history", "sequence", "number", "flush", "merge", "commit", "peer", "node", "the", "of", "and", "a"}

func fillValue(b []byte, r *rand.Rand, text bool) {
	if !text {
		for i := 0; i+8 <= len(b); i += 8 {
			v := r.Uint64()
			for j := 0; j < 8; j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		for i := len(b) &^ 7; i < len(b); i++ {
			b[i] = byte(r.Uint32())
		}
		return
	}
	n := 0
	for n < len(b) {
		w := words[r.IntN(len(words))]
		n += copy(b[n:], w)
		if n < len(b) {
			b[n] = ' '
			n++
		}
	}
}

func generate(ctx context.Context, s *shardstore.Shard, spec genSpec) (genResult, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	r := rand.New(rand.NewPCG(spec.seed, spec.seed^0x9e3779b97f4a7c15))
	var res genResult
	docs := make([]shardstore.Doc, 0, spec.batch)
	sinceFlush := 0
	for i := 0; i < spec.docs; {
		docs = docs[:0]
		for len(docs) < spec.batch && i < spec.docs {
			k := i
			if spec.keySpace > 0 {
				k = r.IntN(spec.keySpace)
			}
			v := make([]byte, spec.docSize)
			fillValue(v, r, spec.text)
			docs = append(docs, shardstore.Doc{Key: fmt.Sprintf("doc-%010d", k), Value: v})
			res.Bytes += int64(spec.docSize)
			i++
			sinceFlush++
			if spec.flushEvery > 0 && sinceFlush >= spec.flushEvery {
				break
			}
		}
		if _, err := s.IndexBatch(ctx, docs); err != nil {
			return res, err
		}
		res.Docs += len(docs)
		if spec.deleteEvery > 0 && res.Docs%spec.deleteEvery < len(docs) {
			if _, err := s.Delete(ctx, fmt.Sprintf("doc-%010d", r.IntN(max(1, res.Docs)))); err != nil {
				return res, err
			}
		}
		if spec.flushEvery > 0 && sinceFlush >= spec.flushEvery {
			if err := s.Flush(); err != nil {
				return res, err
			}
			sinceFlush = 0
		}
	}
	return res, nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
