package wallet

import (
	"bufio"
	"context"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/depai/depai/agent/internal/testchain"
)

const crashEnv = "DEPAI_WALLET_CRASH_CHILD"

var crashPayee = common.HexToAddress("0x00000000000000000000000000000000000000cc")

// TestCrashChild is the agent that gets killed: run only as a child of
// TestKilledBetweenSendAndReceipt.
func TestCrashChild(t *testing.T) {
	phase := os.Getenv(crashEnv)
	if phase == "" {
		t.Skip("runs as a child process of TestKilledBetweenSendAndReceipt")
	}
	key, err := OpenKey(KeyConfig{Path: os.Getenv("DEPAI_WALLET_KEY")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(context.Background(), Config{ChainID: 3338, RPC: os.Getenv("DEPAI_WALLET_RPC"), Signer: key, Journal: os.Getenv("DEPAI_WALLET_JOURNAL")})
	if err != nil {
		t.Fatal(err)
	}
	stop := func() {
		fmt.Println("REACHED " + phase)
		select {} // wait for SIGKILL
	}
	if phase == "journaled" {
		c.afterJournal = stop
	} else {
		c.afterBroadcast = stop
	}
	c.Pay(context.Background(), Transfer{Key: "invoice-7", To: crashPayee, Amount: big.NewInt(777)})
	t.Fatal("payment returned; the child should have been killed")
}

// TestKilledBetweenSendAndReceipt kills the paying process with SIGKILL once
// the signed transaction is journaled (before the broadcast) and once it is
// broadcast (before its receipt is journaled), restarts, retries the payment
// with the same key and checks that the payee was paid exactly once, on
// anvil.
func TestKilledBetweenSendAndReceipt(t *testing.T) {
	for _, phase := range []string{"journaled", "broadcast"} {
		t.Run(phase, func(t *testing.T) {
			node := testchain.StartAnvil(t, 3338)
			dir := t.TempDir()
			keyPath, journal := filepath.Join(dir, "evm.json"), filepath.Join(dir, "payments.journal")
			key, err := OpenKey(KeyConfig{Path: keyPath})
			if err != nil {
				t.Fatal(err)
			}
			node.Fund(t, testchain.Ether(10), key.Address())

			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
			cmd.Env = append(os.Environ(), crashEnv+"="+phase, "DEPAI_WALLET_KEY="+keyPath, "DEPAI_WALLET_RPC="+node.URL, "DEPAI_WALLET_JOURNAL="+journal)
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			out, _ := cmd.StdoutPipe()
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			reached := make(chan bool, 1)
			go func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					if strings.Contains(sc.Text(), "REACHED "+phase) {
						reached <- true
					}
				}
				reached <- false
			}()
			select {
			case ok := <-reached:
				if !ok {
					cmd.Wait()
					t.Fatal("child exited before reaching the kill point")
				}
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				t.Fatal("child did not reach the kill point")
			}
			syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := Open(ctx, Config{ChainID: 3338, RPC: node.URL, Signer: key, Journal: journal, PollInterval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r, err := c.Pay(ctx, Transfer{Key: "invoice-7", To: crashPayee, Amount: big.NewInt(777)})
			if err != nil {
				t.Fatal(err)
			}
			if !r.Reused || r.Nonce != 0 {
				t.Fatalf("the retry sent a new transaction: %+v", r)
			}
			again, err := c.Pay(ctx, Transfer{Key: "invoice-7", To: crashPayee, Amount: big.NewInt(777)})
			if err != nil || again.TxHash != r.TxHash {
				t.Fatalf("second retry: %+v %v", again, err)
			}
			// A new payment takes the next nonce.
			r2, err := c.Pay(ctx, Transfer{Key: "invoice-8", To: crashPayee, Amount: big.NewInt(1)})
			if err != nil || r2.Nonce != 1 {
				t.Fatalf("next payment: %+v %v", r2, err)
			}
			bal, err := c.BalanceOf(ctx, Native, crashPayee)
			if err != nil {
				t.Fatal(err)
			}
			if bal.Int64() != 778 {
				t.Fatalf("payee holds %v wei, want 777 + 1 (paid once)", bal)
			}
		})
	}
}
