package agent

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/depai/depai/agent/config"
	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/agent/wallet"
	"github.com/depai/depai/agent/wallet/onchain"
	"github.com/depai/depai/sdk/wire"
)

// DefaultPeaqAttribute is the DID attribute an agent's document is written
// under when wallet.identities.peaq.attribute is not set.
const DefaultPeaqAttribute = "depai"

// PeaqTarget is where an agent's did:peaq document is kept: the DID
// precompile and the attribute name pq names, or their defaults.
func PeaqTarget(pq *config.PeaqID) (precompile common.Address, attribute []byte) {
	precompile = onchain.PeaqDIDPrecompile
	if pq.Precompile != "" {
		precompile = common.HexToAddress(pq.Precompile)
	}
	return precompile, []byte(cmp.Or(pq.Attribute, DefaultPeaqAttribute))
}

// IdentityStatus is one of an agent's on-chain identities as the chain
// knows it.
type IdentityStatus struct {
	Method     string `json:"method"` // "did:peaq" or "did:io"
	DID        string `json:"did"`
	Contract   string `json:"contract"` // the DID precompile or the ioIDRegistry
	Registered bool   `json:"registered"`
	// Current is true when what is on chain is the agent's current DID
	// document (its hash, for ioID).
	Current bool   `json:"current"`
	Tx      string `json:"tx,omitempty"`    // the registration this call sent
	Error   string `json:"error,omitempty"` // why it could not be read or registered
}

// chainID is one configured on-chain identity and how to register it.
type chainID struct {
	method   string
	did      string
	contract common.Address
	// read reports whether it is on chain and whether it is current.
	read func(ctx context.Context, w *wallet.Client) (registered, current bool, err error)
	// call is the transaction that makes it current.
	call func(ctx context.Context, w *wallet.Client, registered bool) ([]byte, error)
}

func (p *payments) identities() []chainID {
	ids := p.cfg.Wallet.Identities
	if ids == nil || p.key == nil {
		return nil
	}
	me := p.key.Address()
	var out []chainID
	if pq := ids.Peaq; pq != nil {
		did := wallet.PeaqDID(me)
		contract, name := PeaqTarget(pq)
		doc := onchain.Document(did, p.key.PublicKey())
		out = append(out, chainID{method: "did:peaq", did: did, contract: contract,
			read: func(ctx context.Context, w *wallet.Client) (bool, bool, error) {
				a, err := onchain.PeaqRead(ctx, w.Backend(), contract, me, name)
				if errors.Is(err, onchain.ErrNotFound) {
					return false, false, nil
				}
				return err == nil, err == nil && bytes.Equal(a.Value, doc), err
			},
			call: func(_ context.Context, _ *wallet.Client, registered bool) ([]byte, error) {
				if registered {
					return onchain.PeaqUpdate(me, name, doc, 0)
				}
				return onchain.PeaqAdd(me, name, doc, 0)
			}})
	}
	if io := ids.IoID; io != nil {
		did := wallet.IoDID(me)
		reg := onchain.IoIDRegistration{ChainID: p.wcfg.ChainID, Registry: common.HexToAddress(io.Registry), DeviceNFT: common.HexToAddress(io.DeviceNFT),
			TokenID: io.TokenID.Int(), Hash: onchain.DocumentHash(onchain.Document(did, p.key.PublicKey())), URI: io.URI}
		out = append(out, chainID{method: "did:io", did: did, contract: reg.Registry,
			read: func(ctx context.Context, w *wallet.Client) (bool, bool, error) {
				d, err := onchain.ResolveIoID(ctx, w.Backend(), reg.Registry, did)
				if errors.Is(err, onchain.ErrNotFound) {
					return false, false, nil
				}
				return err == nil, err == nil && d.Hash == reg.Hash && d.URI == reg.URI, err
			},
			call: func(ctx context.Context, w *wallet.Client, registered bool) ([]byte, error) {
				if registered {
					return onchain.IoIDUpdate(ctx, w.Backend(), p.key, reg)
				}
				return onchain.IoIDRegister(ctx, w.Backend(), p.key, reg)
			}})
	}
	return out
}

// Identities reads from the chain whether each of an agent's configured
// identities (wallet.identities) is registered and current.
func (f *Fleet) Identities(ctx context.Context, agent string) ([]IdentityStatus, error) {
	p, w, err := f.identityWallet(agent)
	if err != nil {
		return nil, err
	}
	var out []IdentityStatus
	for _, id := range p.identities() {
		st, err := id.status(ctx, w)
		if err != nil {
			st.Error = err.Error()
		}
		out = append(out, st)
	}
	return out, nil
}

// status reads from the chain whether id is registered and current.
func (id chainID) status(ctx context.Context, w *wallet.Client) (IdentityStatus, error) {
	st := IdentityStatus{Method: id.method, DID: id.did, Contract: id.contract.Hex()}
	var err error
	st.Registered, st.Current, err = id.read(ctx, w)
	return st, err
}

func (f *Fleet) identityWallet(agent string) (*payments, *wallet.Client, error) {
	p := f.payments[agent]
	if p == nil || p.cfg.Wallet == nil || p.cfg.Wallet.Identities == nil {
		return nil, nil, fmt.Errorf("agent %s has no on-chain identities configured (wallet.identities: {peaq, ioid})", agent)
	}
	w, err := p.client()
	if err != nil {
		return nil, nil, fmt.Errorf("agent %s's wallet is not available: %w", agent, err)
	}
	return p, w, nil
}

// RegisterIdentities registers each of an agent's identities that is not on
// chain, and updates each whose document changed. Every registration is a
// transaction whose most possible gas cost is a payment to the contract:
// the spend policy decides it (and audits it) before anything is signed,
// /stop refuses it, and its idempotency key (the call's hash) makes a
// retry after a crash wait for the first transaction instead of sending a
// second. Identities already current cost nothing.
func (f *Fleet) RegisterIdentities(ctx context.Context, agent string) ([]IdentityStatus, error) {
	p, w, err := f.identityWallet(agent)
	if err != nil {
		return nil, err
	}
	var out []IdentityStatus
	var errs []error
	for _, id := range p.identities() {
		st, err := f.registerIdentity(ctx, p, w, id)
		if err != nil {
			st.Error = err.Error()
			errs = append(errs, fmt.Errorf("%s %s: %w", id.method, id.did, err))
		}
		out = append(out, st)
	}
	return out, errors.Join(errs...)
}

func (f *Fleet) registerIdentity(ctx context.Context, p *payments, w *wallet.Client, id chainID) (IdentityStatus, error) {
	st, err := id.status(ctx, w)
	if err != nil || st.Current {
		return st, err
	}
	registered := st.Registered
	data, err := id.call(ctx, w, registered)
	if err != nil {
		return st, err
	}
	op := "register"
	if registered {
		op = "update"
	}
	c := wallet.Call{Key: fmt.Sprintf("identity:%s:%s:%x", strings.TrimPrefix(id.method, "did:"), op, crypto.Keccak256(data)[:12]), To: id.contract, Data: data}
	purpose := fmt.Sprintf("gas to %s %s at %s", op, id.did, id.contract.Hex())
	action := policy.Action{Agent: p.agent, Principal: policy.Principal{Kind: policy.PrincipalSystem, ID: "identity"},
		Kind: policy.ActionHost, Name: "identity." + op, Effect: wire.EffectPayment, Target: id.contract.Hex()}
	r, reused := w.Lookup(c.Key)
	if !reused {
		cost, err := w.Cost(ctx, c)
		if err != nil {
			// The call would revert or the node cannot price it: nothing
			// is sent, and the attempt is on record.
			f.auditIdentity(ctx, action, c.Key, err)
			return st, err
		}
		action.Args, _ = json.Marshal(policy.Payment{Key: c.Key, Chain: w.ChainID(), Asset: config.NativeAsset, Payee: id.contract.Hex(), Amount: cost.String(), Purpose: purpose})
		done, err := f.policy.Authorize(ctx, action)
		if err != nil {
			return st, fmt.Errorf("%s refused: %w", purpose, err)
		}
		c.MaxCost = cost
		r, err = w.Send(ctx, c)
		if errors.Is(err, wallet.ErrReverted) {
			// Mined and reverted: the gas was spent, so it stays counted.
			done(nil, err)
		} else {
			settle(done, r, err)
		}
		if err != nil {
			return st, err
		}
	}
	st.Tx = r.TxHash.Hex()
	st.Registered, st.Current, err = id.read(ctx, w)
	if err == nil && !st.Current {
		err = fmt.Errorf("transaction %s succeeded but the chain does not show the current document", r.TxHash.Hex())
	}
	return st, err
}

// auditIdentity records a registration that could not be priced: nothing
// was sent.
func (f *Fleet) auditIdentity(ctx context.Context, a policy.Action, key string, err error) {
	e := policy.Entry{Agent: a.Agent, Principal: a.Principal, Kind: a.Kind, Action: a.Name, Target: a.Target, Phase: policy.PhaseEvent,
		Decision: policy.Deny, Reason: fmt.Sprintf("%s (key %s) not sent: %v", a.Name, key, err)}
	if _, werr := f.audit.Write(context.WithoutCancel(ctx), e); werr != nil {
		f.log.Error("audit: identity registration not recorded", "agent", a.Agent, "err", werr)
	}
}

// identityCommand is /identity: the agent's on-chain identities as the chain
// knows them.
func identityCommand(ctx context.Context, a *Agent, _ call) (any, string, error) {
	ids, err := a.fleet.Identities(ctx, a.cfg.Name)
	if err != nil {
		return nil, "", &commandError{code: CodeUnavailable, msg: err.Error()}
	}
	var b strings.Builder
	for _, s := range ids {
		state := "not registered"
		switch {
		case s.Error != "":
			state = "unknown: " + s.Error
		case s.Current:
			state = "registered"
		case s.Registered:
			state = "registered, document out of date"
		}
		fmt.Fprintf(&b, "%-9s %s at %s: %s\n", s.Method, s.DID, s.Contract, state)
	}
	return ids, strings.TrimRight(b.String(), "\n"), nil
}
