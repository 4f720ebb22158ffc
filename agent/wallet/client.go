package wallet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/depai/depai/agent/wallet/internal/journal"
)

// Backend is the part of an Ethereum JSON-RPC client the wallet uses.
// *ethclient.Client and the simulated backend's client satisfy it.
type Backend interface {
	ChainID(ctx context.Context) (*big.Int, error)
	BalanceAt(ctx context.Context, account common.Address, block *big.Int) (*big.Int, error)
	PendingNonceAt(ctx context.Context, account common.Address) (uint64, error)
	HeaderByNumber(ctx context.Context, number *big.Int) (*types.Header, error)
	BlockNumber(ctx context.Context) (uint64, error)
	SuggestGasPrice(ctx context.Context) (*big.Int, error)
	SuggestGasTipCap(ctx context.Context) (*big.Int, error)
	EstimateGas(ctx context.Context, call ethereum.CallMsg) (uint64, error)
	CallContract(ctx context.Context, call ethereum.CallMsg, block *big.Int) ([]byte, error)
	SendTransaction(ctx context.Context, tx *types.Transaction) error
	TransactionByHash(ctx context.Context, hash common.Hash) (*types.Transaction, bool, error)
	TransactionReceipt(ctx context.Context, hash common.Hash) (*types.Receipt, error)
}

// Config configures a Client. ChainID, Signer, Journal and one of RPC or
// Backend are required.
type Config struct {
	// ChainID is the chain this wallet pays on (IoTeX 4689/4690, peaq 3338,
	// …). A node that reports another chain id is refused.
	ChainID uint64
	// RPC is the node's JSON-RPC endpoint (http(s)://, ws(s):// or an IPC
	// path). Ignored when Backend is set.
	RPC string
	// Backend is an already connected node; the caller closes it.
	Backend Backend
	// Signer signs the transactions (normally a *Key).
	Signer Signer
	// Journal is the idempotency journal file in the agent's data directory.
	Journal string
	// Confirmations is how many blocks, counting the receipt's own, must
	// exist before a payment is reported done. 0 means 1.
	Confirmations uint64
	// PollInterval is how often a receipt is polled for. 0 means 500 ms.
	PollInterval time.Duration
	// CallTimeout bounds every RPC call. 0 means 10 s.
	CallTimeout time.Duration
	// MaxFeePerGas caps what the wallet bids per gas (wei); nil: no cap. A
	// payment that cannot be sent under the cap fails before signing.
	MaxFeePerGas *big.Int
}

// Client pays from one key on one chain. Its methods are safe for concurrent
// use. Lock order: Client.sendMu → Client.mu → journal.
type Client struct {
	cfg     Config
	backend Backend
	closeFn func()
	signer  Signer
	chainID *big.Int
	j       *journal.File

	sendMu    sync.Mutex // allocates nonces: sign, journal and broadcast one at a time
	nextNonce uint64     // guarded by sendMu

	mu      sync.Mutex
	intents map[string]*intent

	// Test hooks, run after the intent is durable and after the broadcast.
	afterJournal, afterBroadcast func()
}

// Native is the asset address that stands for the chain's native coin.
var Native = common.Address{}

// Call is a transaction to send: a contract call, or a plain transfer when
// Data is empty.
type Call struct {
	// Key is the idempotency key: a Call with a key already used returns
	// the first one's receipt and never sends again, across restarts.
	Key   string
	To    common.Address
	Value *big.Int // wei; nil means 0
	Data  []byte
	// MaxCost bounds what the transaction may cost in wei — gas limit ×
	// max fee per gas + Value — as the spend policy allowed it (see Cost);
	// above it the call fails with ErrFeeCap before signing. Nil: no bound.
	// It is not part of the call's fingerprint.
	MaxCost *big.Int
}

// Transfer pays Amount of Asset (Native or an ERC-20 contract) to To.
type Transfer struct {
	Key    string
	Asset  common.Address
	To     common.Address
	Amount *big.Int
}

// Receipt is a payment's outcome.
type Receipt struct {
	Key      string
	TxHash   common.Hash
	Nonce    uint64
	Status   uint64 // types.ReceiptStatusSuccessful or …Failed
	Block    uint64
	GasUsed  uint64
	GasPrice *big.Int // effective price per gas, wei
	// Reused is true when the receipt belongs to an earlier call with the
	// same key: nothing was sent this time.
	Reused bool
	Logs   []*types.Log
}

// Errors. A *PendingError, a *RevertedError and ErrAbandoned carry what the
// audit needs; errors.Is works on the sentinel values.
var (
	ErrWrongChain   = errors.New("wallet: the node reports another chain id")
	ErrKeyConflict  = errors.New("wallet: idempotency key already used for a different transaction")
	ErrAbandoned    = errors.New("wallet: the node refused the transaction; nothing was paid")
	ErrReverted     = errors.New("wallet: transaction reverted")
	ErrPending      = errors.New("wallet: transaction sent but not yet confirmed")
	ErrFeeCap       = errors.New("wallet: the network fee is above the configured cap")
	ErrNotSent      = errors.New("wallet: the transaction would fail; nothing was sent")
	ErrNoTransferEv = errors.New("wallet: the token reported success but logged no matching Transfer")
)

// PendingError says the transaction is (or may be) in flight; calling again
// with the same key resumes waiting for it and never sends a second one.
type PendingError struct {
	Key    string
	TxHash common.Hash
	Err    error
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("wallet: payment %q (transaction %s) is not confirmed yet: %v; retry with the same key", e.Key, e.TxHash, e.Err)
}
func (e *PendingError) Unwrap() []error { return []error{ErrPending, e.Err} }

// RevertedError says the transaction was mined and reverted: the transfer
// did not happen, only gas was spent.
type RevertedError struct{ Receipt *Receipt }

func (e *RevertedError) Error() string {
	return fmt.Sprintf("wallet: payment %q: transaction %s reverted in block %d; nothing was transferred (gas used %d)", e.Receipt.Key, e.Receipt.TxHash, e.Receipt.Block, e.Receipt.GasUsed)
}
func (e *RevertedError) Unwrap() error { return ErrReverted }

// intent is one journaled transaction.
type intent struct {
	Key     string
	Fp      common.Hash // fingerprint of the Call: a reused key must name the same one
	Raw     []byte
	Hash    common.Hash
	Nonce   uint64
	receipt *Receipt
	gone    string // abandoned: why
	mu      sync.Mutex
}

type jrecord struct {
	Op      string         `json:"op"` // intent, receipt, abandon
	Key     string         `json:"key"`
	Fp      common.Hash    `json:"fp,omitzero"`
	Raw     hexutil.Bytes  `json:"raw,omitempty"`
	Hash    common.Hash    `json:"hash,omitzero"`
	Nonce   uint64         `json:"nonce,omitempty"`
	Status  uint64         `json:"status,omitempty"`
	Block   uint64         `json:"block,omitempty"`
	GasUsed uint64         `json:"gas,omitempty"`
	Price   *hexutil.Big   `json:"price,omitempty"`
	Logs    []*types.Log   `json:"logs,omitempty"`
	Reason  string         `json:"reason,omitempty"`
	Chain   hexutil.Uint64 `json:"chain,omitempty"`
}

// Open connects to the node, refuses it if it reports another chain id, and
// loads the idempotency journal. Transactions journaled but not confirmed
// before a restart are re-broadcast (the same signed bytes) if the node does
// not know them; Resume waits for them.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	switch {
	case cfg.ChainID == 0:
		return nil, errors.New("wallet: Config.ChainID is required")
	case cfg.Signer == nil:
		return nil, errors.New("wallet: Config.Signer is required")
	case cfg.Journal == "":
		return nil, errors.New("wallet: Config.Journal is required")
	case cfg.Backend == nil && cfg.RPC == "":
		return nil, errors.New("wallet: Config.RPC (or Backend) is required")
	}
	if cfg.Confirmations == 0 {
		cfg.Confirmations = 1
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	c := &Client{cfg: cfg, signer: cfg.Signer, chainID: new(big.Int).SetUint64(cfg.ChainID), intents: map[string]*intent{}, backend: cfg.Backend, closeFn: func() {}}
	where := "the configured backend"
	if c.backend == nil {
		where = cfg.RPC
		dctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
		ec, err := ethclient.DialContext(dctx, cfg.RPC)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("wallet: connect to %s: %w", cfg.RPC, err)
		}
		c.backend, c.closeFn = ec, ec.Close
	}
	ok := false
	defer func() {
		if !ok {
			c.closeFn()
		}
	}()
	id, err := call(ctx, c, func(ctx context.Context) (*big.Int, error) { return c.backend.ChainID(ctx) })
	if err != nil {
		return nil, fmt.Errorf("wallet: eth_chainId from %s: %w", where, err)
	}
	if id.Cmp(c.chainID) != 0 {
		return nil, fmt.Errorf("%w: %s reports chain id %s, the configuration says %d; refusing it", ErrWrongChain, where, id, cfg.ChainID)
	}
	if err := c.loadJournal(); err != nil {
		return nil, err
	}
	for _, it := range c.pending() {
		// Best effort: a node that is down now is retried by Resume and Send.
		c.rebroadcast(ctx, it)
	}
	ok = true
	return c, nil
}

func (c *Client) loadJournal() error {
	j, err := journal.Open(c.cfg.Journal, func(_ int, payload []byte) error {
		var r jrecord
		if err := json.Unmarshal(payload, &r); err != nil {
			return fmt.Errorf("wallet journal record: %w", err)
		}
		switch r.Op {
		case "intent":
			if uint64(r.Chain) != c.cfg.ChainID {
				return fmt.Errorf("wallet journal record: key %q is for chain %d, this wallet pays on %d (one journal per chain)", r.Key, r.Chain, c.cfg.ChainID)
			}
			var tx types.Transaction
			if err := tx.UnmarshalBinary(r.Raw); err != nil {
				return fmt.Errorf("wallet journal record: key %q: signed transaction: %w", r.Key, err)
			}
			if tx.Hash() != r.Hash {
				return fmt.Errorf("wallet journal record: key %q: transaction hashes to %s, journal says %s", r.Key, tx.Hash(), r.Hash)
			}
			c.intents[r.Key] = &intent{Key: r.Key, Fp: r.Fp, Raw: r.Raw, Hash: r.Hash, Nonce: r.Nonce}
		case "receipt", "abandon":
			it := c.intents[r.Key]
			if it == nil {
				return fmt.Errorf("wallet journal record: %s for unknown key %q", r.Op, r.Key)
			}
			if r.Op == "abandon" {
				delete(c.intents, r.Key) // the key may be used afresh
				return nil
			}
			price := new(big.Int)
			if r.Price != nil {
				price = r.Price.ToInt()
			}
			it.receipt = &Receipt{Key: r.Key, TxHash: it.Hash, Nonce: it.Nonce, Status: r.Status, Block: r.Block, GasUsed: r.GasUsed, GasPrice: price, Logs: r.Logs}
		default:
			return fmt.Errorf("wallet journal record: unknown op %q", r.Op)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("wallet: %w", err)
	}
	c.j = j
	for _, it := range c.intents {
		if it.receipt == nil && it.Nonce+1 > c.nextNonce {
			c.nextNonce = it.Nonce + 1
		}
	}
	return nil
}

func (c *Client) pending() []*intent {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*intent
	for _, it := range c.intents {
		if it.receipt == nil {
			out = append(out, it)
		}
	}
	return out
}

// call runs one RPC with the configured timeout.
func call[T any](ctx context.Context, c *Client, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	return f(ctx)
}

// Close closes the journal and the connection Open made.
func (c *Client) Close() error {
	err := c.j.Close()
	c.closeFn()
	return err
}

// Address is the paying address.
func (c *Client) Address() common.Address { return c.signer.Address() }

// ChainID is the chain paid on.
func (c *Client) ChainID() uint64 { return c.cfg.ChainID }

// Backend is the node connection, for reads the wallet does not wrap.
func (c *Client) Backend() Backend { return c.backend }

var (
	selTransfer  = crypto.Keccak256([]byte("transfer(address,uint256)"))[:4]
	selBalanceOf = crypto.Keccak256([]byte("balanceOf(address)"))[:4]
	topicXfer    = crypto.Keccak256Hash([]byte("Transfer(address,address,uint256)"))
)

// Balance returns the wallet's balance of asset (Native or an ERC-20).
func (c *Client) Balance(ctx context.Context, asset common.Address) (*big.Int, error) {
	return c.BalanceOf(ctx, asset, c.Address())
}

// BalanceOf returns who's balance of asset (Native or an ERC-20).
func (c *Client) BalanceOf(ctx context.Context, asset, who common.Address) (*big.Int, error) {
	if asset == Native {
		b, err := call(ctx, c, func(ctx context.Context) (*big.Int, error) { return c.backend.BalanceAt(ctx, who, nil) })
		if err != nil {
			return nil, fmt.Errorf("wallet: balance of %s: %w", who, err)
		}
		return b, nil
	}
	out, err := c.Read(ctx, asset, append(bytes.Clone(selBalanceOf), common.LeftPadBytes(who.Bytes(), 32)...))
	if err != nil {
		return nil, fmt.Errorf("wallet: balanceOf(%s) on token %s: %w", who, asset, err)
	}
	if len(out) != 32 {
		return nil, fmt.Errorf("wallet: balanceOf(%s) on token %s returned %d bytes, want 32 (is it an ERC-20 contract?)", who, asset, len(out))
	}
	return new(big.Int).SetBytes(out), nil
}

// Read makes an eth_call from the wallet's address at the latest block.
func (c *Client) Read(ctx context.Context, to common.Address, data []byte) ([]byte, error) {
	from := c.Address()
	return call(ctx, c, func(ctx context.Context) ([]byte, error) {
		return c.backend.CallContract(ctx, ethereum.CallMsg{From: from, To: &to, Data: data}, nil)
	})
}

// Pay transfers Amount of Asset to To and waits for the receipt. For an
// ERC-20 it also checks that the token logged the Transfer.
func (c *Client) Pay(ctx context.Context, t Transfer) (*Receipt, error) {
	if t.Amount == nil || t.Amount.Sign() <= 0 {
		return nil, fmt.Errorf("wallet: payment %q: amount %v is not positive", t.Key, t.Amount)
	}
	if t.Asset == Native {
		return c.Send(ctx, Call{Key: t.Key, To: t.To, Value: t.Amount})
	}
	data := append(bytes.Clone(selTransfer), common.LeftPadBytes(t.To.Bytes(), 32)...)
	data = append(data, common.LeftPadBytes(t.Amount.Bytes(), 32)...)
	r, err := c.Send(ctx, Call{Key: t.Key, To: t.Asset, Data: data})
	if err != nil {
		return r, err
	}
	for _, l := range r.Logs {
		if l.Address == t.Asset && len(l.Topics) == 3 && l.Topics[0] == topicXfer &&
			common.BytesToAddress(l.Topics[1].Bytes()) == c.Address() && common.BytesToAddress(l.Topics[2].Bytes()) == t.To &&
			new(big.Int).SetBytes(l.Data).Cmp(t.Amount) == 0 {
			return r, nil
		}
	}
	return r, fmt.Errorf("%w: payment %q, transaction %s", ErrNoTransferEv, t.Key, r.TxHash)
}

// fingerprint identifies a Call's content.
func fingerprint(chain uint64, k Call) common.Hash {
	v := k.Value
	if v == nil {
		v = new(big.Int)
	}
	return crypto.Keccak256Hash(new(big.Int).SetUint64(chain).Bytes(), []byte{0}, k.To.Bytes(), common.LeftPadBytes(v.Bytes(), 32), k.Data)
}

// Send sends the call as a transaction and waits for its receipt. A key that
// was used before returns that transaction's receipt (waiting for it if it
// is still pending) and sends nothing; if the node does not know that
// transaction, the same signed bytes are broadcast again, so it can never be
// paid twice. The signed transaction is journaled (fsync) before it is
// broadcast.
//
// Errors: the node refusing the transaction → ErrAbandoned (nothing paid, the
// key is free again); mined but reverted → *RevertedError; ctx ending before
// the receipt → *PendingError (retry with the same key).
func (c *Client) Send(ctx context.Context, k Call) (*Receipt, error) {
	if k.Key == "" {
		return nil, errors.New("wallet: an idempotency key is required")
	}
	fp := fingerprint(c.cfg.ChainID, k)
	if it, err := c.existing(k.Key, fp); it != nil || err != nil {
		if err != nil {
			return nil, err
		}
		return c.finish(ctx, it, true)
	}
	it, fresh, err := c.sign(ctx, k, fp)
	if err != nil {
		return nil, err
	}
	return c.finish(ctx, it, !fresh)
}

func (c *Client) existing(key string, fp common.Hash) (*intent, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it := c.intents[key]
	if it == nil {
		return nil, nil
	}
	if it.Fp != fp {
		return nil, fmt.Errorf("%w: key %q (transaction %s)", ErrKeyConflict, key, it.Hash)
	}
	return it, nil
}

// sign builds, signs, journals and broadcasts a new transaction. When the key
// was claimed meanwhile it returns that intent instead, with fresh false.
func (c *Client) sign(ctx context.Context, k Call, fp common.Hash) (it *intent, fresh bool, err error) {
	from, to := c.Address(), k.To
	gas, value, fees, err := c.price(ctx, k)
	if err != nil {
		return nil, false, err
	}
	if k.MaxCost != nil {
		if cost := fees.cost(gas, value); cost.Cmp(k.MaxCost) > 0 {
			return nil, false, fmt.Errorf("%w: payment %q would cost up to %s wei (gas %d), more than the %s allowed", ErrFeeCap, k.Key, cost, gas, k.MaxCost)
		}
	}

	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if it, err := c.existing(k.Key, fp); it != nil || err != nil {
		return it, false, err
	}
	pn, err := call(ctx, c, func(ctx context.Context) (uint64, error) { return c.backend.PendingNonceAt(ctx, from) })
	if err != nil {
		return nil, false, fmt.Errorf("wallet: payment %q: pending nonce of %s: %w", k.Key, from, err)
	}
	nonce := max(pn, c.nextNonce)
	var txd types.TxData
	if fees.tip != nil {
		txd = &types.DynamicFeeTx{ChainID: c.chainID, Nonce: nonce, GasTipCap: fees.tip, GasFeeCap: fees.cap, Gas: gas, To: &to, Value: value, Data: k.Data}
	} else {
		txd = &types.LegacyTx{Nonce: nonce, GasPrice: fees.cap, Gas: gas, To: &to, Value: value, Data: k.Data}
	}
	tx, err := c.signer.SignTx(types.NewTx(txd), c.chainID)
	if err != nil {
		return nil, false, fmt.Errorf("wallet: payment %q: %w", k.Key, err)
	}
	raw, err := tx.MarshalBinary()
	if err != nil {
		return nil, false, fmt.Errorf("wallet: payment %q: encode transaction: %w", k.Key, err)
	}
	it = &intent{Key: k.Key, Fp: fp, Raw: raw, Hash: tx.Hash(), Nonce: nonce}
	rec, _ := json.Marshal(jrecord{Op: "intent", Key: k.Key, Fp: fp, Raw: raw, Hash: it.Hash, Nonce: nonce, Chain: hexutil.Uint64(c.cfg.ChainID)})
	c.mu.Lock()
	seq, err := c.j.Append(rec)
	if err == nil {
		c.intents[k.Key] = it
	}
	c.mu.Unlock()
	if err == nil {
		err = c.j.Sync(seq)
	}
	if err != nil {
		// Not durable, so never broadcast. The in-memory intent stays so
		// the key cannot be signed twice in this process.
		return nil, false, fmt.Errorf("wallet: payment %q: journal: %w", k.Key, err)
	}
	c.nextNonce = nonce + 1
	if c.afterJournal != nil {
		c.afterJournal()
	}
	err = c.broadcast(ctx, tx)
	if c.afterBroadcast != nil {
		c.afterBroadcast()
	}
	if err != nil {
		var rerr rpc.Error
		if errors.As(err, &rerr) && !knownTx(err) {
			// The node answered and refused it: it will not be mined.
			c.abandon(it, err.Error())
			if c.nextNonce == nonce+1 {
				c.nextNonce = nonce
			}
			return nil, false, fmt.Errorf("%w: payment %q: %v", ErrAbandoned, k.Key, err)
		}
		if !knownTx(err) {
			return nil, false, &PendingError{Key: k.Key, TxHash: it.Hash, Err: fmt.Errorf("broadcast: %w", err)}
		}
	}
	return it, true, nil
}

type fees struct{ tip, cap *big.Int }

// cost is the most a transaction with this gas limit and value can cost.
func (f fees) cost(gas uint64, value *big.Int) *big.Int {
	c := new(big.Int).Mul(new(big.Int).SetUint64(gas), f.cap)
	return c.Add(c, value)
}

// Cost is the most sending k would cost now, in wei: the gas Send would
// allow (the estimate, plus a fifth for a contract call) at the fee cap it
// would bid, plus k.Value. The spend policy decides a contract call on it;
// pass it back as k.MaxCost so the transaction cannot cost more.
func (c *Client) Cost(ctx context.Context, k Call) (*big.Int, error) {
	gas, value, f, err := c.price(ctx, k)
	if err != nil {
		return nil, err
	}
	return f.cost(gas, value), nil
}

// price is the gas limit, value and fees sending k would use now.
func (c *Client) price(ctx context.Context, k Call) (gas uint64, value *big.Int, f fees, err error) {
	value = k.Value
	if value == nil {
		value = new(big.Int)
	}
	from, to := c.Address(), k.To
	gas, err = call(ctx, c, func(ctx context.Context) (uint64, error) {
		return c.backend.EstimateGas(ctx, ethereum.CallMsg{From: from, To: &to, Value: value, Data: k.Data})
	})
	if err != nil {
		return 0, nil, f, fmt.Errorf("%w: payment %q: estimate gas: %w", ErrNotSent, k.Key, err)
	}
	if len(k.Data) > 0 {
		gas += gas / 5 // contract calls: room for state that changes before inclusion
	}
	if f, err = c.fees(ctx); err != nil {
		return 0, nil, f, fmt.Errorf("wallet: payment %q: %w", k.Key, err)
	}
	return gas, value, f, nil
}

// fees picks EIP-1559 fees when the chain has a base fee, else a legacy gas
// price, within MaxFeePerGas.
func (c *Client) fees(ctx context.Context) (fees, error) {
	head, err := call(ctx, c, func(ctx context.Context) (*types.Header, error) { return c.backend.HeaderByNumber(ctx, nil) })
	if err != nil {
		return fees{}, fmt.Errorf("latest header: %w", err)
	}
	limit := c.cfg.MaxFeePerGas
	if head.BaseFee == nil {
		price, err := call(ctx, c, func(ctx context.Context) (*big.Int, error) { return c.backend.SuggestGasPrice(ctx) })
		if err != nil {
			return fees{}, fmt.Errorf("gas price: %w", err)
		}
		if limit != nil && price.Cmp(limit) > 0 {
			return fees{}, fmt.Errorf("%w: gas price %s wei, cap %s", ErrFeeCap, price, limit)
		}
		return fees{cap: price}, nil
	}
	tip, err := call(ctx, c, func(ctx context.Context) (*big.Int, error) { return c.backend.SuggestGasTipCap(ctx) })
	if err != nil {
		return fees{}, fmt.Errorf("gas tip: %w", err)
	}
	feeCap := new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip)
	if limit != nil && feeCap.Cmp(limit) > 0 {
		if need := new(big.Int).Add(head.BaseFee, tip); need.Cmp(limit) > 0 {
			return fees{}, fmt.Errorf("%w: base fee %s + tip %s wei, cap %s", ErrFeeCap, head.BaseFee, tip, limit)
		}
		feeCap = new(big.Int).Set(limit)
	}
	return fees{tip: tip, cap: feeCap}, nil
}

func knownTx(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "already known") || strings.Contains(s, "already imported") || strings.Contains(s, "known transaction")
}

func (c *Client) abandon(it *intent, reason string) {
	rec, _ := json.Marshal(jrecord{Op: "abandon", Key: it.Key, Reason: reason})
	c.mu.Lock()
	if c.intents[it.Key] == it {
		delete(c.intents, it.Key)
	}
	it.gone = reason
	seq, err := c.j.Append(rec)
	c.mu.Unlock()
	if err == nil {
		c.j.Sync(seq) // if this fails the intent is re-checked after a restart
	}
}

// rebroadcast makes sure the node knows a journaled transaction: mined,
// pending in its pool, or sent again now. ErrAbandoned means it never will be.
func (c *Client) rebroadcast(ctx context.Context, it *intent) error {
	if r, err := call(ctx, c, func(ctx context.Context) (*types.Receipt, error) { return c.backend.TransactionReceipt(ctx, it.Hash) }); err == nil && r != nil {
		return nil
	}
	if _, _, err := call3(ctx, c, it.Hash); err == nil {
		return nil // pending in the node's pool
	}
	var tx types.Transaction
	if err := tx.UnmarshalBinary(it.Raw); err != nil {
		return err
	}
	err := c.broadcast(ctx, &tx)
	if err == nil || knownTx(err) {
		return nil
	}
	var rerr rpc.Error
	if errors.As(err, &rerr) {
		// Refused now (for instance nonce too low because another
		// transaction took the nonce): if it has no receipt it never will.
		if r, rerr2 := call(ctx, c, func(ctx context.Context) (*types.Receipt, error) { return c.backend.TransactionReceipt(ctx, it.Hash) }); rerr2 == nil && r != nil {
			return nil
		}
		c.abandon(it, "re-broadcast refused: "+err.Error())
		return fmt.Errorf("%w: payment %q: %v", ErrAbandoned, it.Key, err)
	}
	return err
}

func call3(ctx context.Context, c *Client, h common.Hash) (*types.Transaction, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	return c.backend.TransactionByHash(ctx, h)
}

func (c *Client) broadcast(ctx context.Context, tx *types.Transaction) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	return c.backend.SendTransaction(ctx, tx)
}

// finish waits for an intent's receipt (re-broadcasting if the node lost it)
// and journals it.
func (c *Client) finish(ctx context.Context, it *intent, reused bool) (*Receipt, error) {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.gone != "" {
		return nil, fmt.Errorf("%w: payment %q: %s", ErrAbandoned, it.Key, it.gone)
	}
	if it.receipt == nil {
		if reused {
			if err := c.rebroadcast(ctx, it); err != nil {
				if errors.Is(err, ErrAbandoned) {
					return nil, err
				}
				return nil, &PendingError{Key: it.Key, TxHash: it.Hash, Err: err}
			}
		}
		r, err := c.wait(ctx, it)
		if err != nil {
			return nil, err
		}
		price := r.EffectiveGasPrice
		if price == nil {
			price = new(big.Int)
		}
		rc := &Receipt{Key: it.Key, TxHash: it.Hash, Nonce: it.Nonce, Status: r.Status, Block: r.BlockNumber.Uint64(), GasUsed: r.GasUsed, GasPrice: price, Logs: r.Logs}
		rec, _ := json.Marshal(jrecord{Op: "receipt", Key: it.Key, Status: rc.Status, Block: rc.Block, GasUsed: rc.GasUsed, Price: (*hexutil.Big)(price), Logs: r.Logs})
		if err := c.j.AppendSync(rec); err != nil {
			return nil, &PendingError{Key: it.Key, TxHash: it.Hash, Err: fmt.Errorf("journal receipt: %w", err)}
		}
		c.mu.Lock()
		it.receipt = rc
		c.mu.Unlock()
	}
	out := *it.receipt
	out.Reused = reused
	if out.Status != types.ReceiptStatusSuccessful {
		return &out, &RevertedError{Receipt: &out}
	}
	return &out, nil
}

// wait polls for the receipt and the configured confirmations: at once,
// then after PollInterval, backing off to 8×PollInterval so that many
// payments in flight do not flood the node.
func (c *Client) wait(ctx context.Context, it *intent) (*types.Receipt, error) {
	delay := c.cfg.PollInterval
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, &PendingError{Key: it.Key, TxHash: it.Hash, Err: ctx.Err()}
		case <-t.C:
		}
		r, err := call(ctx, c, func(ctx context.Context) (*types.Receipt, error) { return c.backend.TransactionReceipt(ctx, it.Hash) })
		if err == nil && r != nil {
			if c.cfg.Confirmations <= 1 {
				return r, nil
			}
			head, herr := call(ctx, c, func(ctx context.Context) (uint64, error) { return c.backend.BlockNumber(ctx) })
			if herr == nil && head+1 >= r.BlockNumber.Uint64()+c.cfg.Confirmations {
				return r, nil
			}
		}
		// Not found yet, or a failed poll: poll again until ctx ends.
		t.Reset(delay)
		delay = min(2*delay, 8*c.cfg.PollInterval)
	}
}

// Resume waits for every transaction journaled but not yet confirmed (after
// a restart) and returns their receipts; call it once at start.
func (c *Client) Resume(ctx context.Context) ([]*Receipt, error) {
	var out []*Receipt
	var errs []error
	for _, it := range c.pending() {
		r, err := c.finish(ctx, it, true)
		if r != nil {
			out = append(out, r)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// Lookup returns the receipt journaled for key, if the payment finished.
func (c *Client) Lookup(key string) (*Receipt, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it := c.intents[key]
	if it == nil || it.receipt == nil {
		return nil, false
	}
	r := *it.receipt
	r.Reused = true
	return &r, true
}
