package enginetest

import (
	"context"
	"slices"
	"testing"

	"github.com/recoverd/recoverd/engine"
	"github.com/recoverd/recoverd/seqno"
)

// testDigest: two copies holding the same ops up to a seqno have the same
// digest there, whatever their files and whatever either holds above it;
// content no longer held at a seqno is ErrCompacted, unless a pinned
// commit still holds it.
func testDigest(t *testing.T, h Harness) {
	e, _ := fresh(t, h)
	a, b := create(t, e, sid("a")), create(t, e, sid("b"))
	ops := docs(0, 150, 1)
	ops[40] = engine.Op{Key: ops[3].Key, SeqNo: 40, PrimaryTerm: 1, Kind: engine.OpDelete}
	apply(t, a, ops[:100])
	flush(t, a)
	apply(t, a, ops[100:])
	// b gets the same ops in another order, committed at other points:
	// other files, same content.
	rev := slices.Clone(ops)
	slices.Reverse(rev)
	for i := 0; i < len(rev); i += 30 {
		apply(t, b, rev[i:i+30])
		if i == 60 {
			flush(t, b)
		}
	}
	flush(t, b)
	da, at, err := a.DigestAt(ctx, nil, seqno.Unassigned)
	if err != nil || at != 149 {
		t.Fatalf("DigestAt(a) = %v, %v", at, err)
	}
	if db := digest(t, b, seqno.Unassigned); db != da {
		t.Fatal("copies holding the same ops have different digests")
	}
	if d := digest(t, b, 149); d != da {
		t.Fatal("the digest at the max seqno differs from the digest of everything")
	}
	if d := digest(t, a, 120); d == da {
		t.Fatal("the digest at 120 is the digest at 149")
	}

	// a takes more ops; at 149 it is still b's content.
	if _, err := a.AcquireLease(ctx, lease("recovery", info(t, a).Retained.From, "n1")); err != nil {
		t.Fatal(err)
	}
	pin, err := a.Pin(ctx, engine.PinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Release(ctx)
	apply(t, a, docs(150, 30, 1))
	if d := digest(t, a, 149); d != da {
		t.Fatal("a copy that holds more has another digest at 149")
	}
	flush(t, a) // the current commit now holds ops past 149
	apply(t, a, docs(180, 10, 1))
	_, _, err = a.DigestAt(ctx, nil, 149)
	want(t, "a digest at a seqno the current commit is past", err, engine.ErrCompacted)
	if d, at, err := a.DigestAt(ctx, pin, 149); err != nil || d != da || at != 149 {
		t.Fatalf("the digest at 149 from the pinned commit = %v, %v; want b's", at, err)
	}
	if d := digest(t, a, seqno.Unassigned); d == da {
		t.Fatal("the digest of everything does not see the ops past 149")
	}

	// Refusals.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := a.DigestAt(cctx, nil, 170); err == nil {
		t.Fatal("a digest with a cancelled context answered")
	}
	_, _, err = a.DigestAt(ctx, nil, -5)
	want(t, "a digest at seqno -5", err, engine.ErrInvalidArgument)
	bpin, err := b.Pin(ctx, engine.PinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = a.DigestAt(ctx, bpin, 149)
	want(t, "a digest from another copy's pin", err, engine.ErrInvalidArgument)
	bpin.Release(ctx)
	_, _, err = b.DigestAt(ctx, bpin, 149)
	want(t, "a digest from a released pin", err, engine.ErrPinLost)
}
