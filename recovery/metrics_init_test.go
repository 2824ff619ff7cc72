package recovery

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recoverd/recoverd/seqno"
	"github.com/recoverd/recoverd/snapshot"
	"github.com/recoverd/recoverd/transfer"
)

// A fresh node exports every family at zero, and the label values the
// executor uses are among those created in advance.
func TestMetricsExistAtZeroBeforeAnyEvent(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	NewMetrics(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 16 {
		t.Errorf("gathered %d families before any event, want the 16 NewMetrics registers", len(mfs))
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			if v != 0 {
				t.Errorf("%s %v = %v before any event", mf.GetName(), m.GetLabel(), v)
			}
		}
	}
	for _, err := range []error{snapshot.ErrChecksum, snapshot.ErrNotFound, snapshot.ErrUnavailable, context.DeadlineExceeded, errors.New("x")} {
		if c := fallbackCause(err); !slices.Contains(fallbackCauses, c) {
			t.Errorf("fallback cause %q is not created in advance", c)
		}
		if c := snapshot.BadCause(err); c != "" && !slices.Contains(badBlobCauses, c) {
			t.Errorf("bad-blob cause %q is not created in advance", c)
		}
	}
	for _, err := range []error{seqno.ErrCompacted, seqno.ErrLeaseLost, transfer.ErrPinNotFound, errors.New("x")} {
		if c := causeOf(err); !slices.Contains(replanCauses, c) {
			t.Errorf("re-plan cause %q is not created in advance", c)
		}
	}
}
