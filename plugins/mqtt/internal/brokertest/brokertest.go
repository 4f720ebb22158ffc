// Package brokertest starts MQTT brokers for the mqtt plugin's tests:
// Debian's mosquitto on 127.0.0.1 with a generated config, stopped by PID,
// and mochi-mqtt embedded in the test process. It also speaks just enough
// raw MQTT to play a device that dies without a DISCONNECT, so the broker
// publishes its will.
package brokertest

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Mosquitto starts mosquitto listening on 127.0.0.1:port (0: a free port)
// and returns its tcp:// URL and a func that stops it early (also run at
// cleanup). Tests skip when mosquitto is not installed (scripts/test
// installs it).
func Mosquitto(t testing.TB, port int) (url string, stop func()) {
	t.Helper()
	bin := mosquittoBin(t)
	if port == 0 {
		port = FreePort(t)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n", port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	t.Cleanup(stop)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	waitListening(t, addr)
	return "tcp://" + addr, stop
}

// mosquittoBin finds mosquitto, or skips the test when it is not installed
// (scripts/test installs it).
func mosquittoBin(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			t.Skip("mosquitto not installed (scripts/test installs it)")
		}
		bin = "/usr/sbin/mosquitto"
	}
	return bin
}

// Mochi starts an embedded mochi-mqtt broker on a free 127.0.0.1 port,
// closed at cleanup, and returns its tcp:// URL.
func Mochi(t testing.TB) string {
	t.Helper()
	s := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "t1", Address: addr})); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	waitListening(t, addr)
	return "tcp://" + addr
}

func waitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreePort returns a 127.0.0.1 TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// DyingDevice connects to the broker at addr (host:port) as an MQTT 3.1.1
// client with a will, waits for CONNACK, and returns the connection:
// closing it without DISCONNECT is the device dying, and the broker then
// publishes the will.
func DyingDevice(t testing.TB, addr, clientID, willTopic string, will []byte) net.Conn {
	t.Helper()
	str := func(s []byte) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	vh := append(str([]byte("MQTT")), 4, 0x02|0x04, 0, 60) // level 4; clean session, will flag (QoS 0); keepalive 60
	payload := append(append(str([]byte(clientID)), str([]byte(willTopic))...), str(will)...)
	body := append(vh, payload...)
	pkt := []byte{0x10}
	for n := len(body); ; {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		pkt = append(pkt, b)
		if n == 0 {
			break
		}
	}
	pkt = append(pkt, body...)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK % X, %v", ack, err)
	}
	return c
}
