package transfer

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A pin whose id the client chose can be released by that id whatever
// became of the answer, and asking again with it (a retry after a lost
// answer, a client that restarted) answers the same pin instead of
// taking another one; the id cannot be taken over by another holder.
func TestPinWithAChosenID(t *testing.T) {
	src := newSourceShard(t, t.TempDir(), sourceSpec{docs: 100, valueSize: 64})
	e := startEnv(t, src, envOpts{})
	ctx := ctxT(t)
	p1, info, err := PinCommitAs(ctx, e.client, testShard, time.Minute, "recovery/r1@n2", "pin-n2-r1-1")
	if err != nil {
		t.Fatal(err)
	}
	if p1.ID != "pin-n2-r1-1" || len(info.Meta.Files) == 0 {
		t.Fatalf("pin %+v, %d files", p1, len(info.Meta.Files))
	}
	p2, info2, err := PinCommitAs(ctx, e.client, testShard, time.Minute, "recovery/r1@n2", "pin-n2-r1-1")
	if err != nil {
		t.Fatal(err)
	}
	if p2.ID != p1.ID || p2.Generation != p1.Generation || info2.Meta.Commit != info.Meta.Commit || e.srv.Stats().Pins != 1 {
		t.Fatalf("asked again: pin %+v (first %+v), %d pins held; want the same single pin", p2, p1, e.srv.Stats().Pins)
	}
	if _, _, err := PinCommitAs(ctx, e.client, testShard, time.Minute, "recovery/r9@n3", "pin-n2-r1-1"); err == nil || !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatalf("another holder asking for the id: %v, want AlreadyExists", err)
	}
	if _, _, err := PinCommitAs(ctx, e.client, testShard, time.Minute, "h", "../pin"); err == nil || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Fatalf("an id that is not a name: %v, want InvalidArgument", err)
	}
	if err := ReleasePin(ctx, e.client, "pin-n2-r1-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := RenewPin(ctx, e.client, "pin-n2-r1-1"); !errors.Is(err, ErrPinNotFound) {
		t.Fatalf("renew after release: %v", err)
	}
	if e.srv.Stats().Pins != 0 {
		t.Fatalf("%d pins held after the release", e.srv.Stats().Pins)
	}
}
