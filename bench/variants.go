package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// A variant is one more recoverd contestant in the peer cases (1 and 2):
// the peer plan with other flags on both daemons, or another binary. It
// makes an A/B comparison (a flag, a build) one run of the bench, with the
// tools alternating, rather than two runs minutes apart on a machine
// whose speed drifts (bench/README.md, "Data").
type variant struct {
	label string
	args  []string // added to both daemons' flags
	bin   string   // a directory holding another recoverd ("": the one built)
}

// parseVariants reads -variants: "label: flags; label: flags", where a
// flag bin=DIR runs the recoverd in DIR instead of the one built, e.g.
// "4 MiB chunks: --chunk-size=4194304; before: bin=/tmp/bin-old".
func parseVariants(s string) ([]variant, error) {
	var out []variant
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ";") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		label, rest, ok := strings.Cut(item, ":")
		label = strings.TrimSpace(label)
		if !ok || label == "" {
			return nil, fmt.Errorf("variant %q: want \"label: flags\"", strings.TrimSpace(item))
		}
		if seen[label] {
			return nil, fmt.Errorf("variant %q named twice", label)
		}
		seen[label] = true
		v := variant{label: label}
		for _, f := range strings.Fields(rest) {
			if dir, ok := strings.CutPrefix(f, "bin="); ok {
				v.bin = dir
				continue
			}
			v.args = append(v.args, f)
		}
		if v.bin == "" && len(v.args) == 0 {
			return nil, fmt.Errorf("variant %q changes nothing: give it flags or bin=DIR", label)
		}
		out = append(out, v)
	}
	return out, nil
}

// copyVariantBins copies each variant's recoverd into the work directory,
// as the -baseline binary is, so a rebuild meanwhile does not mix versions.
func (b *bench) copyVariantBins() error {
	for i := range b.variants {
		v := &b.variants[i]
		if v.bin == "" {
			continue
		}
		dst := filepath.Join(b.work, "bin", fmt.Sprintf("recoverd-variant%d", i))
		if err := copyFile(filepath.Join(v.bin, "recoverd"), dst); err != nil {
			return fmt.Errorf("variant %q: %w", v.label, err)
		}
		v.bin = dst
	}
	return nil
}

// variantTools are the peer-plan contestants of the variants on d.
func (b *bench) variantTools(d *dataset) []tool {
	var tools []tool
	for _, v := range b.variants {
		r := b.peerRun(d)
		r.srcArgs = append(append([]string(nil), r.srcArgs...), v.args...)
		r.tgtArgs = append(append([]string(nil), r.tgtArgs...), v.args...)
		r.bin = v.bin
		tools = append(tools, tool{"recoverd peer plan, " + v.label, func(ctx context.Context) (sample, error) { return b.runRecoverd(ctx, r) }})
	}
	return tools
}
