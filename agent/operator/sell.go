package operator

import (
	"net/http"
	"strings"
)

// sellFirst routes /x402/ to sell, unauthenticated — the buyer's payment is
// its credential, checked by the paywall — and everything else to api.
func sellFirst(sell, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/x402/") {
			sell.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}
