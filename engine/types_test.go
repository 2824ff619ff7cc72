package engine

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "../x", "a/b", `a\b`, "a\x00b", ".tmp-x", strings.Repeat("a", MaxNameLen+1), "é"} {
		if err := ValidateName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v", bad, err)
		}
	}
	for _, good := range []string{"seg_0001_ab", "logs-2026.11", "A_b-c.d", strings.Repeat("a", MaxNameLen)} {
		if err := ValidateName(good); err != nil {
			t.Errorf("ValidateName(%q) = %v", good, err)
		}
	}
}

func TestShardID(t *testing.T) {
	for _, bad := range []string{"../etc/0", "logs", "logs/x", "a/b/c/-1", "/3"} {
		if _, err := ParseShardID(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ParseShardID(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	if id, err := ParseShardID("logs/3"); err != nil || id != (ShardID{"logs", 3}) || id.String() != "logs/3" {
		t.Errorf("ParseShardID = %v %v", id, err)
	}
	if err := (ShardID{"logs", 1<<20 + 1}).Validate(); !errors.Is(err, ErrInvalidName) {
		t.Errorf("shard number past 2^20: %v", err)
	}
}

func TestSameAsAndLookup(t *testing.T) {
	if !(FileMeta{"a", 1, 1, "w1"}).SameAs(FileMeta{"a", 1, 1, ""}) {
		t.Error("a file without a writer id is the same as one with")
	}
	for _, o := range []FileMeta{{"a", 1, 1, "w2"}, {"b", 1, 1, "w1"}, {"a", 2, 1, "w1"}, {"a", 1, 2, "w1"}} {
		if (FileMeta{"a", 1, 1, "w1"}).SameAs(o) {
			t.Errorf("%+v is the same as a/1/1/w1", o)
		}
	}
	m := Metadata{Files: []FileMeta{{"a", 1, 1, ""}, {"c", 3, 3, ""}, {"e", 5, 5, ""}}}
	if f, ok := m.Lookup("c"); !ok || f.Length != 3 {
		t.Errorf("Lookup(c) = %v %v", f, ok)
	}
	if _, ok := m.Lookup("d"); ok {
		t.Error("Lookup found a file not listed")
	}
	if m.TotalBytes() != 9 {
		t.Errorf("TotalBytes = %d", m.TotalBytes())
	}
}
