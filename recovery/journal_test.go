package recovery

import (
	"encoding/json"
	"testing"
)

// The journal appends the plan's cached JSON to the marshalled entry
// rather than have json.Marshal check it again: the result must read
// back as the entry with its plan.
func TestAppendPlan(t *testing.T) {
	plan := []byte(`{"kind":"peer","files":[{"name":"seg_1","length":7}]}`)
	for _, obj := range []string{`{"id":"r1","pin":"p"}`, `{}`} {
		b := appendPlan([]byte(obj), plan)
		var got map[string]json.RawMessage
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendPlan(%s): %s does not parse: %v", obj, b, err)
		}
		if string(got["plan"]) != string(plan) {
			t.Errorf("appendPlan(%s): plan %s, want %s", obj, got["plan"], plan)
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal([]byte(obj), &want); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want)+1 {
			t.Errorf("appendPlan(%s) = %s: %d fields, want %d", obj, b, len(got), len(want)+1)
		}
	}
}

// A plan read back from the journal is journaled again as it was read,
// without being marshalled again.
func TestKnownPlanJSON(t *testing.T) {
	b := json.RawMessage(`{"kind":"peer"}`)
	got, err := knownPlanJSON(b).of(nil)
	if err != nil || string(got) != string(b) {
		t.Fatalf("of = %s, %v; want the bytes read back, %s", got, err, b)
	}
}
