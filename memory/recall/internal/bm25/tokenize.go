// Package bm25 is an inverted index scored with Okapi BM25 (k1 1.2, b 0.75,
// the Lucene idf ln(1 + (N - n + 0.5)/(n + 0.5))). Postings live in RAM for
// speed and are split into blocks of consecutive document numbers so that a
// checkpoint rewrites only the blocks that changed.
package bm25

import (
	"slices"
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
	tokens(s, nil, func(t []byte) { out = append(out, string(t)) })
	return out
}

// tokens calls yield with each token of s, as Tokenize splits it, in a
// buffer valid until yield returns; buf is scratch space it may grow. It
// allocates nothing of its own: every record's text and every query is
// tokenized on the turn path, and a string a token was most of what the
// index allocated a record.
func tokens(s string, buf []byte, yield func([]byte)) []byte {
	b := buf[:0]
	flush := func() {
		if len(b) > 0 && len(b) <= MaxTokenBytes {
			yield(b)
		}
		b = b[:0]
	}
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			i++
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
				b = append(b, c)
			case 'A' <= c && c <= 'Z':
				b = append(b, c+'a'-'A')
			default:
				flush()
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
			flush()
			continue
		}
		b = utf8.AppendRune(b, unicode.ToLower(r))
	}
	flush()
	return b
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
	var buf []byte
	var seen map[string]bool // once there are many terms; before, a look at each
	for _, field := range strings.Fields(s) {
		dst := &q.Terms
		if len(field) > 1 && field[0] == '-' {
			dst, field = &q.Exclude, field[1:]
		}
		buf = tokens(field, buf, func(t []byte) {
			if seen != nil {
				key := string(t)
				if dst == &q.Exclude {
					key = "-" + key
				}
				if seen[key] {
					return
				}
				seen[key] = true
			} else if slices.Contains(*dst, string(t)) {
				return
			}
			*dst = append(*dst, string(t))
			if seen == nil && len(q.Terms)+len(q.Exclude) > 32 {
				seen = map[string]bool{}
				for _, t := range q.Terms {
					seen[t] = true
				}
				for _, t := range q.Exclude {
					seen["-"+t] = true
				}
			}
		})
	}
	return q
}
