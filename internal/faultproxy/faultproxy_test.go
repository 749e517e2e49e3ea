package faultproxy

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/ferrybus/ferry/internal/testkit"
)

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
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
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, r *bufio.Reader, deadline time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(deadline))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return "", err
	}
	return r.ReadString('\n')
}

// TestFaults: forwarding, a freeze that holds bytes until the thaw, a drop
// that closes open connections, and refusal of new ones.
func TestFaults(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if got, err := roundTrip(c, r, 10*time.Second); err != nil || got != "ping\n" {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}

	p.Freeze()
	if _, err := roundTrip(c, r, 200*time.Millisecond); err == nil {
		t.Fatal("frozen proxy forwarded an answer")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("frozen proxy: want a timeout, got %v", err)
	}
	p.Thaw()
	// The held ping's answer arrives now.
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "ping\n" {
		t.Fatalf("after thaw: %q, %v", got, err)
	}

	p.DropAll()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after DropAll")
	}

	p.Refuse()
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := roundTrip(c2, bufio.NewReader(c2), 10*time.Second); err == nil {
		t.Fatal("refusing proxy answered")
	}
	p.Accept()
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if got, err := roundTrip(c3, bufio.NewReader(c3), 10*time.Second); err != nil || got != "ping\n" {
		t.Fatalf("after Accept: %q, %v", got, err)
	}
}

// TestDropWhileFrozen: a connection dropped while frozen ends, and Close
// does not wait for a thaw.
func TestDropWhileFrozen(t *testing.T) {
	p, err := New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.Freeze()
	c.Write([]byte("ping\n"))
	// Wait until the proxy holds the connection, then drop it.
	_ = testkit.Poll(context.Background(), 10*time.Second, 5*time.Millisecond, func() bool { return p.Open() > 0 })
	p.DropAll()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		t.Fatal("dropped connection answered")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("dropped connection stayed open: %v", err)
	}
	p.Close()
}
