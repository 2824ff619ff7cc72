package planner

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestPlanJSONRoundTrip(t *testing.T) {
	p := Compute(failover())
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"kind":"snapshot"`, `"from_snapshot":[`, `"fallback":{`, `"retaining_seqno":901`, `"reasons":[`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON lacks %s: %s", key, b)
		}
	}
	var q Plan
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Errorf("round trip changed the plan")
	}
	// A refusal encodes empty lists, not null.
	r, _ := json.Marshal(Compute(Input{}))
	if !strings.Contains(string(r), `"from_peer":[]`) || !strings.Contains(string(r), `"kind":"refused"`) {
		t.Errorf("refusal JSON: %s", r)
	}
}

func TestExplainMentionsEverything(t *testing.T) {
	e := Compute(failover()).Explain()
	for _, s := range []string{"plan: snapshot (snapshot s-42)", "2 from snapshot (95 MiB)", "replay [901..930]", "lease: the source retains ops from 901", "reasons:", "fallback:\n  plan: peer"} {
		if !strings.Contains(e, s) {
			t.Errorf("Explain lacks %q:\n%s", s, e)
		}
	}
}

func TestHuman(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 95 * MiB: "95 MiB", 1 << 62: "4 EiB"} {
		if got := human(n); got != want {
			t.Errorf("human(%d) = %q, want %q", n, got, want)
		}
	}
}
