package wallet

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient/simulated"

	"github.com/depai/depai/agent/internal/testchain"
)

// simChain is go-ethereum's simulated backend, mined every few milliseconds
// so that the wallet's receipt polling sees blocks as on a real chain.
type simChain struct {
	*simulated.Backend
	payer, minter *ecdsa.PrivateKey
	mu            sync.Mutex // serialises Commit with the test's own transactions
}

func newSim(t *testing.T) *simChain {
	t.Helper()
	s := &simChain{payer: testchain.NewKey(t), minter: testchain.NewKey(t)}
	s.Backend = testchain.Simulated(t, s.payer, s.minter)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			s.commit()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func (s *simChain) commit() { s.mu.Lock(); s.Commit(); s.mu.Unlock() }

func importKey(t *testing.T, priv *ecdsa.PrivateKey) *Key {
	t.Helper()
	k, err := ImportKey(KeyConfig{Path: filepath.Join(t.TempDir(), "evm.json")}, crypto.FromECDSA(priv))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (s *simChain) wallet(t *testing.T, journal string) *Client {
	t.Helper()
	c, err := Open(context.Background(), Config{ChainID: testchain.SimulatedChainID, Backend: s.Client(), Signer: importKey(t, s.payer), Journal: journal, PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNativeTransferIdempotent(t *testing.T) {
	ctx := context.Background()
	s := newSim(t)
	journal := filepath.Join(t.TempDir(), "payments.journal")
	w := s.wallet(t, journal)
	to := common.HexToAddress("0x00000000000000000000000000000000000000aa")
	amt := big.NewInt(12345)
	r1, err := w.Pay(ctx, Transfer{Key: "order-1", To: to, Amount: amt})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Status != 1 || r1.Reused || r1.Block == 0 {
		t.Fatalf("receipt %+v", r1)
	}
	r2, err := w.Pay(ctx, Transfer{Key: "order-1", To: to, Amount: amt})
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Reused || r2.TxHash != r1.TxHash {
		t.Fatalf("retry sent again: %+v vs %+v", r2, r1)
	}
	if _, err := w.Pay(ctx, Transfer{Key: "order-1", To: to, Amount: big.NewInt(1)}); !errors.Is(err, ErrKeyConflict) {
		t.Fatalf("key reused for another amount: %v", err)
	}
	// After a restart the key is still known.
	w.Close()
	w2 := s.wallet(t, journal)
	r3, err := w2.Pay(ctx, Transfer{Key: "order-1", To: to, Amount: amt})
	if err != nil || r3.TxHash != r1.TxHash || !r3.Reused {
		t.Fatalf("after restart: %+v, %v", r3, err)
	}
	if bal, _ := w2.BalanceOf(ctx, Native, to); bal.Cmp(amt) != 0 {
		t.Fatalf("payee holds %v, want exactly %v", bal, amt)
	}
}

func TestERC20TransferAndRevert(t *testing.T) {
	ctx := context.Background()
	s := newSim(t)
	cl := s.Client()
	token := testchain.DeployToken(t, cl, nil, s.minter, "Test USD")
	w := s.wallet(t, filepath.Join(t.TempDir(), "j"))
	testchain.Mint(t, cl, nil, s.minter, token, w.Address(), big.NewInt(1000))
	to := common.HexToAddress("0x00000000000000000000000000000000000000bb")
	if _, err := w.Pay(ctx, Transfer{Key: "a", Asset: token, To: to, Amount: big.NewInt(400)}); err != nil {
		t.Fatal(err)
	}
	if bal, _ := w.BalanceOf(ctx, token, to); bal.Int64() != 400 {
		t.Fatalf("payee token balance %v", bal)
	}
	// More than the balance: the estimate fails, nothing is sent or journaled.
	_, err := w.Pay(ctx, Transfer{Key: "b", Asset: token, To: to, Amount: big.NewInt(601)})
	if err == nil || !strings.Contains(err.Error(), "nothing was sent") {
		t.Fatalf("over balance: %v", err)
	}
	if _, ok := w.Lookup("b"); ok {
		t.Fatal("a payment that was never sent is journaled")
	}
	// Two payments that each fit but not together: both estimate against
	// the same state, one is mined and the other reverts.
	s.mu.Lock() // hold mining until both are in the pool
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.Pay(ctx, Transfer{Key: []string{"c", "d"}[i], Asset: token, To: to, Amount: big.NewInt(500)})
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		n := len(w.intents)
		w.mu.Unlock()
		if n == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.mu.Unlock()
	wg.Wait()
	var reverted *RevertedError
	okCount := 0
	for _, err := range errs {
		switch {
		case err == nil:
			okCount++
		case errors.As(err, &reverted):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if okCount != 1 || reverted == nil || reverted.Receipt.Status != 0 {
		t.Fatalf("want one success and one revert, got %v", errs)
	}
	if !strings.Contains(reverted.Error(), "nothing was transferred") {
		t.Fatalf("revert message: %v", reverted)
	}
	if bal, _ := w.BalanceOf(ctx, token, to); bal.Int64() != 900 {
		t.Fatalf("payee token balance %v, want 900", bal)
	}
}

func TestWrongChainRefused(t *testing.T) {
	s := newSim(t)
	_, err := Open(context.Background(), Config{ChainID: 3338, Backend: s.Client(), Signer: importKey(t, s.payer), Journal: filepath.Join(t.TempDir(), "j")})
	if !errors.Is(err, ErrWrongChain) || !strings.Contains(err.Error(), "reports chain id 1337, the configuration says 3338") {
		t.Fatalf("err = %v", err)
	}
}

// TestRPCTimeout points the wallet at an HTTP server that accepts the
// request and never answers.
func TestRPCTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hang := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang })}
	go srv.Serve(ln)
	t.Cleanup(func() { close(hang); srv.Close() })
	signer := importKey(t, testchain.NewKey(t))
	start := time.Now()
	_, err = Open(context.Background(), Config{ChainID: 3338, RPC: "http://" + ln.Addr().String(), Signer: signer,
		Journal: filepath.Join(t.TempDir(), "j"), CallTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "eth_chainId from http://"+ln.Addr().String()) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
}

func TestFeeCap(t *testing.T) {
	s := newSim(t)
	w, err := Open(context.Background(), Config{ChainID: testchain.SimulatedChainID, Backend: s.Client(), Signer: importKey(t, s.payer),
		Journal: filepath.Join(t.TempDir(), "j"), MaxFeePerGas: big.NewInt(1)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, err = w.Pay(context.Background(), Transfer{Key: "x", To: common.Address{1}, Amount: big.NewInt(1)})
	if !errors.Is(err, ErrFeeCap) {
		t.Fatalf("err = %v", err)
	}
}
