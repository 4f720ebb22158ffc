package main

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/depai/depai/plugins/gnss/internal/fix"
	"github.com/depai/depai/sdk/plugintest"
)

// openPTY returns a pseudo-terminal's master and its slave's path: the
// slave is a real tty the plugin opens as a serial port (go.bug.st/serial
// sets its mode as for a USB receiver); what the test writes to the master
// is what the receiver sends.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// TestSerial reads the shipped log from a tty, and notices the receiver
// being unplugged (the pty's master closed).
func TestSerial(t *testing.T) {
	log, err := os.ReadFile("testdata/track.nmea")
	if err != nil {
		t.Fatal(err)
	}
	master, slave := openPTY(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if _, err := master.Write(log); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	pt := plugintest.New(t, plugintest.Config(map[string]string{"source": "serial://" + slave + "?baud=115200", "stale_after": "1h"}))
	f := pollUntil(t, pt, 20*time.Second, func(f fix.Fix) bool { return f.Quality == fix.RTKFixed })
	if !f.HasPosition() {
		t.Fatalf("fix %+v", f)
	}
	cancel()
	master.Close()
	var st fix.Status
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && st.Reconnects == 0; time.Sleep(20 * time.Millisecond) {
		st, _ = plugintest.CallAs[fix.Status](pt, "gnss.status", StatusIn{})
	}
	if st.Reconnects == 0 || st.Connected || st.Quality != fix.None {
		t.Fatalf("after unplugging: %+v", st)
	}
}
