package transfer

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	var nilT *Throttle
	if d, err := nilT.WaitN(context.Background(), 1<<30); d != 0 || err != nil || nilT.Rate() != 0 {
		t.Fatal("nil throttle must be unlimited")
	}
	th := NewThrottle(0)
	if d, _ := th.WaitN(context.Background(), 1<<30); d > 50*time.Millisecond {
		t.Fatalf("unlimited throttle waited %v", d)
	}
	// 1 MiB at 4 MiB/s with a 400 KiB burst: more than the burst (split),
	// about 150ms.
	th.SetRate(4 << 20)
	if th.Rate() != 4<<20 {
		t.Fatal(th.Rate())
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := th.WaitN(context.Background(), 256<<10); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if el < 100*time.Millisecond || el > 5*time.Second {
		t.Fatalf("1 MiB at 4 MiB/s took %v", el)
	}
	if th.Waited() <= 0 {
		t.Fatal("waited not counted")
	}
	// A wait longer than the context allows fails at once.
	th.SetRate(64 << 10)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := th.WaitN(ctx, 10<<20); err == nil {
		t.Fatal("a 160s wait within a 50ms deadline succeeded")
	}
	// Raising the rate at runtime frees waiters at the next piece.
	th.SetRate(1 << 10)
	done := make(chan time.Duration)
	go func() {
		d, _ := th.WaitN(context.Background(), 256<<10)
		done <- d
	}()
	time.Sleep(50 * time.Millisecond)
	th.SetRate(0)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not freed by an unlimited rate")
	}
}
