package snapshot

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestPlanGC(t *testing.T) {
	ok := func(ids ...string) []Entry {
		var out []Entry
		for _, id := range ids {
			out = append(out, Entry{ID: id, Manifest: &Manifest{ID: id}})
		}
		return out
	}
	corrupt := Entry{ID: "s0", Err: fmt.Errorf("manifest s0: %w", ErrCorruptManifest)}
	ids := func(es []Entry) []string {
		out := []string{}
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}
	for _, c := range []struct {
		name              string
		entries           []Entry
		keep              int
		wantKeep, wantDel []string
		wantErr           string // a part of the error's text
		wantIs            error
	}{
		{name: "keeps the newest", entries: ok("s1", "s2", "s3"), keep: 1, wantKeep: []string{"s3"}, wantDel: []string{"s1", "s2"}},
		{name: "keep 0 deletes all", entries: ok("s1", "s2"), keep: 0, wantKeep: []string{}, wantDel: []string{"s1", "s2"}},
		{name: "keep more than there are", entries: ok("s1", "s2"), keep: 5, wantKeep: []string{"s1", "s2"}, wantDel: []string{}},
		{name: "no snapshot", entries: nil, keep: 1, wantKeep: []string{}, wantDel: []string{}},
		{name: "negative keep", entries: ok("s1"), keep: -1, wantErr: "keep -1 is negative"},
		// A corrupt manifest stops it whole, even one it would delete.
		{name: "corrupt manifest", entries: append([]Entry{corrupt}, ok("s1", "s2")...), keep: 1, wantErr: "1 manifest(s) cannot be read", wantIs: ErrCorruptManifest},
	} {
		t.Run(c.name, func(t *testing.T) {
			plan, err := PlanGC(c.entries, c.keep)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || (c.wantIs != nil && !errors.Is(err, c.wantIs)) {
					t.Fatalf("PlanGC = %+v, %v; want an error about %v", plan, err, c.wantErr)
				}
				if len(plan.Keep)+len(plan.Delete) != 0 {
					t.Fatalf("PlanGC failed but decided %+v", plan)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(plan.Keep), c.wantKeep) || !slices.Equal(ids(plan.Delete), c.wantDel) {
				t.Fatalf("PlanGC keeps %v, deletes %v; want %v, %v", ids(plan.Keep), ids(plan.Delete), c.wantKeep, c.wantDel)
			}
		})
	}
}
