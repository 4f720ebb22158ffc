package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/depai/depai/agent"
	"github.com/depai/depai/agent/internal/testchain"
	"github.com/depai/depai/agent/wallet"
)

const payoutCrashEnv = "DEPAI_PAYOUT_CRASH_CHILD"

// openAt opens the fleet of yaml on dataDir, which outlives the fleet: a
// restart, or the parent of a killed child, opens the same data again.
func openAt(t *testing.T, dataDir, yaml string) *agent.Fleet {
	t.Helper()
	f, err := openWith(t, yaml, agent.Options{DataDir: dataDir, CacheDir: sharedCache, Wallets: fastWallets})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestPayoutCrashChild is the agent that is killed in the middle of a
// payout: run only as a child of TestPayoutKilledBetweenSendAndReceipt.
func TestPayoutCrashChild(t *testing.T) {
	rpc := os.Getenv(payoutCrashEnv)
	if rpc == "" {
		t.Skip("runs as a child process of TestPayoutKilledBetweenSendAndReceipt")
	}
	f := openAt(t, os.Getenv("DEPAI_PAYOUT_DATA"), fmt.Sprintf(coOwnedFleet, 3338, rpc))
	fmt.Println("PAYING")
	f.Earn(context.Background(), "rover", "sale-1", big.NewInt(100), "x402")
	t.Fatal("the payout returned; the child should have been killed while it waited for a receipt")
}

// TestPayoutKilledBetweenSendAndReceipt: an agent pays out a round through
// an RPC proxy that forwards the first eth_sendRawTransaction to anvil and
// then holds the answer; the agent is killed (SIGKILL) there — sent, no
// receipt. Restarted against anvil directly, it finishes the round by
// itself, and each owner has been paid their share exactly once.
func TestPayoutKilledBetweenSendAndReceipt(t *testing.T) {
	node := testchain.StartAnvil(t, 3338)
	sent := make(chan struct{}, 1)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		resp, err := http.Post(node.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(body), "eth_sendRawTransaction") {
			select {
			case sent <- struct{}{}:
			default:
			}
			<-r.Context().Done() // the agent dies waiting
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	}))
	defer proxy.Close()

	data := filepath.Join(t.TempDir(), "data")
	key, err := wallet.ImportKey(wallet.KeyConfig{Path: agent.WalletKeyPath(data, "rover")}, crypto.FromECDSA(testchain.NewKey(t)))
	if err != nil {
		t.Fatal(err)
	}
	node.Fund(t, testchain.Ether(1), key.Address())

	cmd := exec.Command(os.Args[0], "-test.run=^TestPayoutCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), payoutCrashEnv+"="+proxy.URL, "DEPAI_PAYOUT_DATA="+data)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, bufio.NewReader(out))
	select {
	case <-sent:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("the child did not send its payout")
	}
	syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	node.Mine(t, 1)

	f := openAt(t, data, fmt.Sprintf(coOwnedFleet, 3338, node.URL))
	defer f.Close(context.Background())
	deadline := time.Now().Add(20 * time.Second)
	for balance(t, node, alice) != 75 || balance(t, node, treasury) != 25 {
		if time.Now().After(deadline) {
			t.Fatalf("the round was not finished after the restart: alice %d, dao %d", balance(t, node, alice), balance(t, node, treasury))
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := f.PayoutNow(ctx, "rover"); err != nil {
		t.Fatal(err)
	}
	nonce, err := node.Client.NonceAt(ctx, key.Address(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, d := balance(t, node, alice), balance(t, node, treasury); a != 75 || d != 25 || nonce != 2 {
		t.Fatalf("alice %d, dao %d, %d transactions sent; want 75, 25 and 2 (each share once)", a, d, nonce)
	}
}
