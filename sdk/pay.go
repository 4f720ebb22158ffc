package sdk

import (
	"context"

	"github.com/depai/depai/sdk/wire"
)

// Types of the pay capability.
type (
	PayArgs    = wire.PayArgs
	PayQuote   = wire.PayQuote
	PayReceipt = wire.PayReceipt
)

// Quote asks the agent what paying would mean now — its balance and the
// spend policy's decision — without paying. Needs the payment grant.
func Quote(ctx context.Context, p PayArgs) (PayQuote, error) {
	return hostCall[PayQuote](ctx, wire.HostPayQuote, p)
}

// Pay asks the agent to pay, within its spend policy (which may park the
// payment for an operator's approval). p.Key is required: retry with the
// same key after any error and the payment is made at most once. Needs the
// payment grant.
func Pay(ctx context.Context, p PayArgs) (PayReceipt, error) {
	return hostCall[PayReceipt](ctx, wire.HostPayExecute, p)
}
