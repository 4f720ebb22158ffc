package ntrip

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzConnectAnswer: whatever a caster answers, Connect returns a stream or
// an error, never panics or hangs.
func FuzzConnectAnswer(f *testing.F) {
	f.Add([]byte("ICY 200 OK\r\n\xd3\x00\x00\x47\xea\x4b"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: gnss/data\r\n\r\n6\r\n\xd3\x00\x00\x47\xea\x4b\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 401 Unauthorized\r\n"))
	f.Add([]byte("SOURCETABLE 200 OK\r\n\r\nSTR;A;\r\nENDSOURCETABLE\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Type: gnss/sourcetable\r\n\r\n"))
	f.Add([]byte("garbage"))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	answers := make(chan []byte, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			a := <-answers
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				_, _ = c.Read(buf)
				_, _ = c.Write(a)
			}()
		}
	}()
	f.Fuzz(func(t *testing.T, answer []byte) {
		answers <- answer
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := Connect(ctx, Config{Addr: l.Addr().String(), Mount: "M", ResponseTimeout: time.Second, IdleTimeout: 200 * time.Millisecond})
		if err != nil {
			return
		}
		defer s.Close()
		_, _ = io.Copy(io.Discard, s)
	})
}
