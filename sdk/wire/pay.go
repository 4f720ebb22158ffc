package wire

// PayArgs is the payload of HostPayQuote and HostPayExecute: pay Amount of
// Asset to To on the agent's chain. The agent's spend policy decides it; the
// plugin never holds a key.
type PayArgs struct {
	// Key is the idempotency key, required by HostPayExecute: an execute
	// retried with the same key — after a timeout, a crash, a restart of
	// the agent — returns the first one's receipt and never pays twice.
	// Keys are per plugin.
	Key     string `json:"key,omitempty"`
	To      string `json:"to"`              // the payee, 0x…
	Asset   string `json:"asset,omitempty"` // "native" (default) or a token contract, 0x…
	Amount  string `json:"amount"`          // decimal integer in the asset's smallest unit
	Purpose string `json:"purpose,omitempty"`
}

// PayQuote is the result of HostPayQuote: what paying would mean now,
// decided by the spend policy without reserving or paying anything.
type PayQuote struct {
	Chain    uint64 `json:"chain"`
	From     string `json:"from"` // the agent's address
	To       string `json:"to"`
	Asset    string `json:"asset"`
	Amount   string `json:"amount"`
	Balance  string `json:"balance"`  // the agent's balance of Asset
	Decision string `json:"decision"` // allow, deny or needs_approval
	Reason   string `json:"reason,omitempty"`
}

// PayReceipt is the result of HostPayExecute: the payment was mined and
// succeeded.
type PayReceipt struct {
	Key    string `json:"key"`
	Chain  uint64 `json:"chain"`
	Tx     string `json:"tx"`
	Block  uint64 `json:"block"`
	From   string `json:"from"`
	To     string `json:"to"`
	Asset  string `json:"asset"`
	Amount string `json:"amount"`
	// Reused is true when this is the receipt of an earlier execute with
	// the same key: nothing was paid this time.
	Reused bool `json:"reused,omitempty"`
}
