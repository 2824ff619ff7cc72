package testutil

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// echo serves a TCP echo server for the test.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, msg []byte, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return io.ErrUnexpectedEOF
	}
	return nil
}

func TestProxyModes(t *testing.T) {
	p := StartProxy(t, echo(t))
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(c, []byte("hello"), 2*time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}

	p.Blackhole()
	if err := roundTrip(c, []byte("lost"), 200*time.Millisecond); err == nil {
		t.Fatal("blackhole: the bytes went through")
	}
	p.Pass()
	// The connection lost bytes: the proxy closed it.
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection that lost bytes stayed open")
	}
	c2, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := roundTrip(c2, []byte("again"), 2*time.Second); err != nil {
		t.Fatalf("pass after blackhole: %v", err)
	}

	p.Cut()
	c2.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("cut left the connection open")
	}

	p.Refuse()
	c3, err := net.Dial("tcp", p.Addr)
	if err == nil {
		c3.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c3.Read(make([]byte, 1)); err == nil {
			t.Fatal("refuse: the connection stayed open")
		}
		c3.Close()
	}
	p.Pass()

	// 64 KiB at 128 KiB/s takes about half a second (the burst is 12.8 KiB).
	p.Slow(128 << 10)
	c4, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	start := time.Now()
	if err := roundTrip(c4, bytes.Repeat([]byte("x"), 64<<10), 10*time.Second); err != nil {
		t.Fatalf("slow: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("64 KiB each way at 128 KiB/s took %v", d)
	}
	p.Slow(0)
	p.Delay(100 * time.Millisecond)
	start = time.Now()
	if err := roundTrip(c4, []byte("slowly"), 2*time.Second); err != nil {
		t.Fatalf("delay: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("a round trip through a 100ms delay each way took %v", d)
	}
	if s := p.Stats(); s.Accepted < 4 || s.Dropped == 0 || s.Forwarded == 0 {
		t.Fatalf("stats: %+v", s)
	}
}
