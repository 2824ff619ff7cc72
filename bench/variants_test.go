package main

import (
	"slices"
	"testing"
)

func TestParseVariants(t *testing.T) {
	vs, err := parseVariants(" 4 MiB chunks: --chunk-size=4194304 --parallel-files 8; before: bin=/tmp/old ;")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 {
		t.Fatalf("%d variants, want 2: %+v", len(vs), vs)
	}
	if vs[0].label != "4 MiB chunks" || !slices.Equal(vs[0].args, []string{"--chunk-size=4194304", "--parallel-files", "8"}) || vs[0].bin != "" {
		t.Errorf("first variant: %+v", vs[0])
	}
	if vs[1].label != "before" || len(vs[1].args) != 0 || vs[1].bin != "/tmp/old" {
		t.Errorf("second variant: %+v", vs[1])
	}
	for _, bad := range []string{"no label", ": --x", "a: --x; a: --y", "empty:"} {
		if _, err := parseVariants(bad); err == nil {
			t.Errorf("parseVariants(%q) accepted", bad)
		}
	}
	if vs, err := parseVariants(""); err != nil || len(vs) != 0 {
		t.Errorf("empty: %v, %v", vs, err)
	}
}
