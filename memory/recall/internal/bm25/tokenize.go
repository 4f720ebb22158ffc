// Package bm25 is an inverted index scored with Okapi BM25 (k1 1.2, b 0.75,
// the Lucene idf ln(1 + (N - n + 0.5)/(n + 0.5))). Postings live in RAM for
// speed and are split into blocks of consecutive document numbers so that a
// checkpoint rewrites only the blocks that changed.
package bm25

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxTokenBytes bounds a token; longer runs (hashes, base64) are dropped.
const MaxTokenBytes = 64

// Tokenize lower-cases s and splits it into runs of letters and digits.
// No stemming and no stop words: scores stay predictable, and BM25's idf
// already discounts words that occur everywhere.
func Tokenize(s string) []string {
	var out []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 && b.Len() <= MaxTokenBytes {
			out = append(out, b.String())
		}
		b.Reset()
	}
	for _, r := range s {
		if r == utf8.RuneError || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
			flush()
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	flush()
	return out
}

// Query is a parsed search: documents score on Terms and must contain none
// of Exclude.
type Query struct {
	Terms   []string
	Exclude []string
}

// ParseQuery reads free text. A word written with a leading "-" (at the start
// or after a space) is excluded; everything else is tokenized like a
// document. Repeated terms count once.
func ParseQuery(s string) Query {
	var q Query
	seen := map[string]bool{}
	for _, field := range strings.Fields(s) {
		dst := &q.Terms
		if len(field) > 1 && field[0] == '-' {
			dst, field = &q.Exclude, field[1:]
		}
		for _, t := range Tokenize(field) {
			key := t
			if dst == &q.Exclude {
				key = "-" + t
			}
			if !seen[key] {
				seen[key] = true
				*dst = append(*dst, t)
			}
		}
	}
	return q
}
