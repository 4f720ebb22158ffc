package x402

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

// FuzzRequirements feeds arbitrary 402 answers to the client's parser and
// offer selection; it must never panic, and an offer it accepts must be
// complete.
func FuzzRequirements(f *testing.F) {
	h, _ := encodeHeader(PaymentRequired{X402Version: 2, Accepts: []Requirements{{Scheme: "exact", Network: "eip155:3338",
		Asset: "0x0000000000000000000000000000000000000c0c", Amount: "10", PayTo: "0x00000000000000000000000000000000000000aa",
		MaxTimeoutSeconds: 60, Extra: map[string]any{"name": "T", "version": "2"}}}})
	f.Add(h, "")
	f.Add("", `{"x402Version":1,"accepts":[{"scheme":"exact","network":"peaq","maxAmountRequired":"1","asset":"0x0000000000000000000000000000000000000c0c","payTo":"0x00000000000000000000000000000000000000aa","maxTimeoutSeconds":5,"extra":{"name":"a","version":"1"}}]}`)
	f.Add("e30=", "{}")
	f.Fuzz(func(t *testing.T, header, body string) {
		resp := &http.Response{StatusCode: 402, Header: http.Header{}, Body: io.NopCloser(bytes.NewBufferString(body))}
		if header != "" {
			resp.Header.Set(HeaderRequired, header)
		}
		pr, err := readRequired(resp)
		if err != nil {
			return
		}
		o, err := (&Transport{cfg: TransportConfig{}}).choose(pr)
		if err != nil {
			return
		}
		if o.Amount == nil || o.Amount.Sign() <= 0 || o.ChainID == 0 || o.TokenName == "" || o.MaxTimeout <= 0 {
			t.Fatalf("incomplete offer %+v", o)
		}
	})
}

// refuseAll is a facilitator that refuses every payment, so the fuzzer only
// exercises the seller's own parsing.
type refuseAll struct{}

func (refuseAll) Verify(context.Context, VerifyRequest) (VerifyResponse, error) {
	return VerifyResponse{InvalidReason: "fuzz"}, nil
}
func (refuseAll) Settle(context.Context, VerifyRequest) (SettleResponse, error) {
	return SettleResponse{}, errors.New("never")
}
func (refuseAll) Supported(context.Context) (SupportedResponse, error) {
	return SupportedResponse{}, nil
}

// FuzzPaymentHeader sends arbitrary PAYMENT-SIGNATURE and X-PAYMENT values to
// a Paywall: it must answer 402 and never run the handler.
func FuzzPaymentHeader(f *testing.F) {
	f.Add("", "")
	f.Add("eyJ4NDAyVmVyc2lvbiI6Mn0=", "")
	f.Add("", "eyJ4NDAyVmVyc2lvbiI6MX0=")
	guard, err := OpenReplayGuard(filepath.Join(f.TempDir(), "replay"), nil)
	if err != nil {
		f.Fatal(err)
	}
	defer guard.Close()
	pw, err := Paywall(PaywallConfig{Accepts: []Price{{ChainID: 3338, Asset: common.Address{1}, Amount: big.NewInt(5), PayTo: common.Address{2}, TokenName: "T", TokenVersion: "2"}},
		Facilitator: refuseAll{}, Replay: guard})
	if err != nil {
		f.Fatal(err)
	}
	h := pw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("served without payment") }))
	f.Fuzz(func(t *testing.T, v2, v1 string) {
		req := httptest.NewRequest("GET", "/feed", nil)
		if v2 != "" {
			req.Header.Set(HeaderSignature, v2)
		}
		if v1 != "" {
			req.Header.Set(HeaderPaymentV1, v1)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusPaymentRequired {
			t.Fatalf("status %d", rec.Code)
		}
	})
}

// FuzzRecoverUpto: any upto payload (JSON) either fails with an error or
// recovers a signer; a valid authorization survives Wire and ParseUptoAuth.
func FuzzRecoverUpto(f *testing.F) {
	f.Add(`{"signature":"0x00","permit2Authorization":{"from":"0x00000000000000000000000000000000000000a1","permitted":{"token":"0x0000000000000000000000000000000000000c0c","amount":"500"},"spender":"0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002","nonce":"1","deadline":"9","witness":{"to":"0x00000000000000000000000000000000000000aa","facilitator":"0x00000000000000000000000000000000000000fa","validAfter":"0"}}}`)
	f.Add(`{"signature":"0x","permit2Authorization":{"permitted":{}}}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, s string) {
		var p ExactPayload
		if json.Unmarshal([]byte(s), &p) != nil {
			return
		}
		if a, _, err := RecoverUpto(3338, p); err == nil {
			if b, err := ParseUptoAuth(a.Wire()); err != nil || b.Max.Cmp(a.Max) != 0 {
				t.Fatalf("round trip of %+v: %+v %v", a, b, err)
			}
		}
	})
}
