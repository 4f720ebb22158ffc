// Package gpsfake starts Debian's gpsfake — which starts a real gpsd on a
// pty and replays an NMEA log into it — for the gnss plugin's tests. It
// listens on 127.0.0.1 only (gpsd's default without -G) and is stopped by
// its process group when the test ends.
package gpsfake

import (
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Start replays log in a loop (cycle seconds between sentences) through a
// gpsd on 127.0.0.1:port (0: a free port) and returns host:port once it
// accepts connections, and a func that kills gpsfake and its gpsd early
// (also run at cleanup). Tests skip when gpsfake is not installed
// (scripts/test installs it).
func Start(t testing.TB, log string, cycle float64, port int) (addr string, stop func()) {
	t.Helper()
	if _, err := exec.LookPath("gpsfake"); err != nil {
		t.Skip("gpsfake not installed (apt-get install gpsd gpsd-clients; scripts/test does)")
	}
	if port == 0 {
		port = FreePort(t)
	}
	cmd := exec.Command("gpsfake", "-q", "-c", strconv.FormatFloat(cycle, 'f', -1, 64), "-P", strconv.Itoa(port), log)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	t.Cleanup(stop)
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr, stop
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	t.Fatalf("gpsfake on %s did not accept connections within 15s", addr)
	return "", stop
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
