package x402

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/depai/depai/agent/internal/testchain"
)

// The interop tests run the official x402 TypeScript packages (npm
// @x402/core, @x402/evm, @x402/express, @x402/fetch 2.27.0 with viem; see
// testdata/interop.cjs) against our client, server and facilitator on anvil:
// code we did not write on the other side of the wire.

func node(t *testing.T, m *market, env map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	bin := testchain.Tool(t, "node", "DEPAI_NODE")
	modules := filepath.Join(filepath.Dir(filepath.Dir(testchain.Tool(t, "anvil", "DEPAI_ANVIL"))))
	if _, err := os.Stat(filepath.Join(modules, "@x402", "fetch")); err != nil {
		testchain.Missing(t, fmt.Sprintf("the x402 npm packages are not installed next to anvil (%s); scripts/test installs them", modules))
	}
	cmd := exec.Command(bin, append([]string{filepath.Join("testdata", "interop.cjs")}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "RPC="+m.node.URL, fmt.Sprintf("CHAIN_ID=%d", chain),
		"TOKEN="+m.token.Hex(), "PAY_TO="+m.seller.Hex(), "AMOUNT="+m.price.Amount.String())
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

var listeningPort = regexp.MustCompile(`^LISTENING (\d+)$`)

// serve starts a Node server and returns its base URL.
func serve(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listeningPort.FindStringSubmatch(sc.Text()); m != nil {
				port <- m[1]
			}
		}
		close(port)
	}()
	select {
	case p, ok := <-port:
		if !ok {
			t.Fatal("node server exited before listening")
		}
		return "http://127.0.0.1:" + p
	case <-time.After(60 * time.Second):
		t.Fatal("node server did not listen within 60 s")
	}
	return ""
}

// TestInteropGoClientTSServer: our Transport pays an @x402/express paywall
// whose facilitator is @x402/core's x402Facilitator with @x402/evm.
func TestInteropGoClientTSServer(t *testing.T) {
	t.Parallel()
	m := newMarket(t)
	fac := serve(t, node(t, m, map[string]string{"KEY": hexutil.Encode(crypto.FromECDSA(m.facPriv))}, "facilitator"))
	srv := serve(t, node(t, m, map[string]string{"FACILITATOR": fac}, "server"))
	b := newBudget(t, m, 1e6)
	resp, err := m.client(t, b, nil).Get(srv + "/feed")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"sensor":"ts1","celsius":19.25}` {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if len(b.last) != 1 || !b.last[0].Settled || !txHash().MatchString(b.last[0].Tx) {
		t.Fatalf("outcome %+v", b.last)
	}
	if got := m.balance(t, m.seller); got != m.price.Amount.Int64() {
		t.Fatalf("seller holds %d, want %s", got, m.price.Amount)
	}
}

// TestInteropTSClientGoServer: @x402/fetch pays our Paywall, settled by our
// Local facilitator over HTTP.
func TestInteropTSClientGoServer(t *testing.T) {
	t.Parallel()
	m := newMarket(t)
	srv, sales := m.sell(t, &HTTPFacilitator{URL: m.facURL}, nil)
	cmd := node(t, m, map[string]string{"KEY": hexutil.Encode(crypto.FromECDSA(m.buyerPriv))}, "client", srv.URL+"/feed")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client: %v", err)
	}
	var res struct {
		Status int
		Body   string
		Settle *SettleResponse
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node client printed %q: %v", out, err)
	}
	if res.Status != 200 || res.Body != `{"sensor":"t1","celsius":21.5}` || res.Settle == nil || !res.Settle.Success {
		t.Fatalf("node client got %+v", res)
	}
	if got := m.balance(t, m.seller); got != m.price.Amount.Int64() {
		t.Fatalf("seller holds %d, want %s", got, m.price.Amount)
	}
	if s := sales(); len(s) != 1 || s[0].Stage != "sold" {
		t.Fatalf("sales %+v", s)
	}
}

// TestInteropGoServerTSFacilitator: our Paywall verifies and settles through
// the TypeScript facilitator; our client pays.
func TestInteropGoServerTSFacilitator(t *testing.T) {
	t.Parallel()
	m := newMarket(t)
	fac := serve(t, node(t, m, map[string]string{"KEY": hexutil.Encode(crypto.FromECDSA(m.facPriv))}, "facilitator"))
	hf := &HTTPFacilitator{URL: fac}
	sup, err := hf.Supported(context.Background())
	if err != nil || len(sup.Kinds) == 0 {
		t.Fatalf("/supported: %+v %v", sup, err)
	}
	srv, sales := m.sell(t, hf, nil)
	b := newBudget(t, m, 1e6)
	resp, err := m.client(t, b, nil).Get(srv.URL + "/feed")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d; sales %+v", resp.StatusCode, sales())
	}
	if got := m.balance(t, m.seller); got != m.price.Amount.Int64() {
		t.Fatalf("seller holds %d", got)
	}
}
