package rawsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func pair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	t.Cleanup(func() { a.Close(); b.Close() })
	ra, rb := New(a), New(b)
	if raw && (ra.rc == nil || rb.rc == nil) {
		t.Fatal("unix socket not read raw")
	}
	return ra, rb
}

// A write larger than the socket buffer completes across waits in the
// poller, in order; the peer's close reads as io.EOF.
func TestLargeWriteAndEOF(t *testing.T) {
	a, b := pair(t)
	big := bytes.Repeat([]byte("0123456789"), 1<<20)
	errc := make(chan error, 1)
	go func() {
		n, err := a.Write(big)
		if err == nil && n != len(big) {
			err = io.ErrShortWrite
		}
		errc <- err
		a.Close()
	}()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("read %d bytes, want %d in order", len(got), len(big))
	}
}

// Deadlines and Close interrupt a read waiting in the poller.
func TestDeadlineAndClose(t *testing.T) {
	a, b := pair(t)
	_ = b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := b.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
	_ = b.SetReadDeadline(time.Time{})
	if _, err := a.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("read after clearing the deadline: %q, %v", buf[:n], err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := b.Read(buf)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read interrupted by Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not interrupt the read")
	}
	if _, err := a.Write([]byte("x")); err != nil {
		t.Logf("write after the peer closed: %v", err) // may or may not fail at once
	}
}
