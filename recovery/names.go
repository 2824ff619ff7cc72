package recovery

import (
	"fmt"

	"github.com/recoverd/recoverd/engine"
)

// The names a recovery leaves on its source are derived from the recovery
// id and the target node's id, so that two targets that happen to use the
// same recovery id never share (renew, release) each other's lease. The
// source bounds each of them to engine.MaxNameLen and checks the lease
// id with engine.ValidateName, so Start refuses an id for which one of
// them would not fit: the source would refuse it only once the recovery
// ran.

// leaseID names the retention lease a recovery takes on its source.
func leaseID(node, recoveryID string) string { return "recovery-" + node + "-" + recoveryID }

// holderName labels the recovery's lease and pins on the source.
func holderName(node, recoveryID string) string { return "recovery/" + recoveryID + "@" + node }

// maxPinSeq bounds the number in pin names (they wrap past it).
const maxPinSeq = 999999

// pinName names the seq-th commit pin a recovery asks its source for: the
// id is chosen, and journaled, before it is asked for, so that a restart
// can release a pin whose answer never arrived.
func pinName(node, recoveryID string, seq int) string {
	return fmt.Sprintf("pin-%s-%s-%d", node, recoveryID, (seq-1)%maxPinSeq+1)
}

// checkNames reports, wrapping engine.ErrInvalidName, a recovery id
// (or node id) that makes a name the source would refuse.
func checkNames(node, recoveryID string) error {
	if err := engine.ValidateName(node); err != nil {
		return fmt.Errorf("node id %q cannot name leases on a source: %w", node, err)
	}
	if err := engine.ValidateName(recoveryID); err != nil {
		return fmt.Errorf("recovery id: %w", err)
	}
	if id := recoveryID; len(id) > maxIDLen(node) {
		return fmt.Errorf("%w: recovery id is %d bytes long; at most %d are allowed on node %s, because a source accepts at most %d bytes for the lease id %q, the pin id %q and the holder %q derived from it",
			engine.ErrInvalidName, len(id), maxIDLen(node), node, engine.MaxNameLen, leaseID(node, "<id>"), pinName(node, "<id>", maxPinSeq), holderName(node, "<id>"))
	}
	return nil
}

// maxIDLen is the longest recovery id whose derived names all fit.
func maxIDLen(node string) int {
	longest := max(len(leaseID(node, "")), len(holderName(node, "")), len(pinName(node, "", maxPinSeq)))
	return engine.MaxNameLen - longest
}
