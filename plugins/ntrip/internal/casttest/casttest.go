// Package casttest runs RTKLIB's str2str as an NTRIP caster for the ntrip
// plugin's tests. str2str binds every interface and has no option to bind
// one, so a test using it re-runs itself inside a new network namespace
// (unshare -n) whose only interface is loopback: nothing it opens is
// reachable from outside, and nothing it does leaves the machine.
package casttest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const envInNetns = "DEPAI_TEST_IN_NETNS"

// InNetns reports whether the calling test runs inside its own network
// namespace. Called outside one, it runs the test again inside one —
// `unshare -n` with only lo up — fails t if that run fails, and returns
// false: the caller returns at once. It skips when unshare or str2str is
// missing (scripts/test installs rtklib).
func InNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envInNetns) == "1" {
		return true
	}
	for _, tool := range []string{"unshare", "ip", "str2str"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/test installs rtklib; unshare and ip come with util-linux and iproute2)", tool)
		}
	}
	// As root, a network namespace; otherwise a user namespace too (-r), so
	// that unprivileged CI can still bring lo up inside it.
	args := []string{"-n"}
	if os.Geteuid() != 0 {
		args = []string{"-r", "-n"}
	}
	args = append(args, "sh", "-c", `ip link set lo up && exec "$0" "$@"`, os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), envInNetns+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	if err != nil && bytes.Contains(out.Bytes(), []byte("unshare failed")) {
		t.Skipf("cannot create a network namespace here: %s", out.Bytes())
	}
	if err != nil || !bytes.Contains(out.Bytes(), []byte("--- PASS: "+t.Name())) {
		t.Fatalf("%s inside unshare -n: %v\n%s", t.Name(), err, out.Bytes())
	}
	return false
}

// Caster is a running str2str: Input is its tcpsvr input (write RTCM
// there), Addr its NTRIP caster.
type Caster struct {
	Input, Addr string
}

// Start starts `str2str -in tcpsvr://:P1 -out ntripc://user:pw@:P2/mount`
// and waits until both ports accept. Call it only inside InNetns. It is
// killed by PID at cleanup.
func Start(t testing.TB, user, pw, mount string) Caster {
	t.Helper()
	if os.Getenv(envInNetns) != "1" {
		t.Fatal("casttest.Start outside a network namespace; call InNetns first")
	}
	p1, p2 := FreePort(t), FreePort(t)
	cmd := exec.Command("str2str", "-in", "tcpsvr://:"+strconv.Itoa(p1), "-out", "ntripc://"+user+":"+pw+"@:"+strconv.Itoa(p2)+"/"+mount)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	c := Caster{Input: "127.0.0.1:" + strconv.Itoa(p1), Addr: "127.0.0.1:" + strconv.Itoa(p2)}
	for _, a := range []string{c.Input, c.Addr} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			conn, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("str2str did not listen on %s: %v", a, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
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
