package planner

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/recoverd/recoverd/seqno"
)

// human renders a byte count in binary units: "512 B", "1.5 KiB", "20 GiB".
func human(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	f := float64(n) / 1024
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	s := strconv.FormatFloat(f, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + units[i]
}

// fmtRange renders an op range, "[501..520]" or "none".
func fmtRange(r seqno.Range) string {
	if r.Empty() {
		return "none"
	}
	return r.String()
}

// String is a one-line summary of the plan.
func (p Plan) String() string {
	if p.Kind == KindRefused {
		if len(p.Reasons) > 0 {
			return p.Reasons[0]
		}
		return "refused"
	}
	var b strings.Builder
	b.WriteString(string(p.Kind))
	if p.SnapshotID != "" {
		b.WriteString(" " + p.SnapshotID)
	}
	fmt.Fprintf(&b, ": %d reused (%s), %d from snapshot (%s), %d from peer (%s), ops %s",
		len(p.Reused), human(p.BytesReused), len(p.FromSnapshot), human(p.BytesFromRepo),
		len(p.FromPeer), human(p.BytesFromPeer), fmtRange(p.Ops))
	if p.Fallback != nil {
		b.WriteString(", fallback " + string(p.Fallback.Kind))
	}
	return b.String()
}

// Explain renders the plan over several lines for an operator: what moves
// from where, the ops, the lease, the estimates, every reason, and the
// fallback plan indented below.
func (p Plan) Explain() string {
	var b strings.Builder
	p.explain(&b, "")
	return b.String()
}

func (p Plan) explain(b *strings.Builder, indent string) {
	line := func(format string, args ...any) {
		b.WriteString(indent)
		fmt.Fprintf(b, format, args...)
		b.WriteByte('\n')
	}
	if p.Kind == KindRefused {
		line("plan: refused")
	} else {
		kind := string(p.Kind)
		if p.SnapshotID != "" {
			kind += " (snapshot " + p.SnapshotID + ")"
		}
		line("plan: %s", kind)
		line("files: %d reused (%s), %d from snapshot (%s), %d from peer (%s)",
			len(p.Reused), human(p.BytesReused), len(p.FromSnapshot), human(p.BytesFromRepo), len(p.FromPeer), human(p.BytesFromPeer))
		if p.Ops.Empty() {
			line("ops: none to replay")
		} else {
			line("ops: replay %s from the source (%d ops, ~%s)", fmtRange(p.Ops), p.Ops.Len(), human(p.OpsBytes))
		}
		if p.Lease != nil {
			l := fmt.Sprintf("lease: the source retains ops from %v", p.Lease.RetainingSeqNo)
			if p.Lease.ProtectedBy != "" {
				l += " (already protected by lease " + p.Lease.ProtectedBy + ")"
			}
			line("%s", l)
		}
		c := p.Commit
		line("commit: history %s, max seqno %v, local checkpoint %v, written by %s (format %d)",
			c.HistoryUUID, c.MaxSeqNo, c.LocalCheckpoint, c.WriterVersion, c.FormatVersion)
		line("estimated: %s from the source, %s from the repository (cost %.4g)", human(p.BytesFromSource), human(p.BytesFromRepo), p.Cost)
	}
	line("reasons:")
	for _, r := range p.Reasons {
		line("  - %s", r)
	}
	if p.Fallback != nil {
		line("fallback:")
		p.Fallback.explain(b, indent+"  ")
	}
}
