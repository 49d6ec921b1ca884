package wire_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/wire"
)

// requireLikeJSON checks Valid against encoding/json: the same verdict as
// json.Valid and, for valid input, compact exactly when json.Compact
// changes nothing.
func requireLikeJSON(t testing.TB, b []byte) {
	t.Helper()
	ok, compact := wire.Valid(b)
	require.Equal(t, json.Valid(b), ok, "Valid(%q)", b)
	if ok {
		var buf bytes.Buffer
		require.NoError(t, json.Compact(&buf, b))
		require.Equal(t, bytes.Equal(buf.Bytes(), b), compact, "compact of %q", b)
	}
}

var validCases = []string{
	``, ` `, `{}`, `[]`, `""`, `0`, `-0`, `1`, `-1`, `12`, `012`, `-`, `-a`, `1.`, `1.5`, `.5`, `1e`, `1e5`,
	`1E+5`, `1e-5`, `1.5e+10`, `1e+`, `-0.0e0`, `0x1`, `1 2`, `true`, `false`, `null`, `tru`, `nul`, `nulll`,
	`True`, `{"a":1}`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":1,"b":[1,2,{"c":null}]}`,
	`[1,]`, `[,1]`, `[1 2]`, `[[[]]]`, `[[[]]`, `]`, `}`, `{"a":1}}`, `[1]]`, ` {"a" : [ 1 , 2 ] } `,
	"{\n\t\"a\":\r\n1}", `{"message":"a b"}`, `"\u00e9"`, `"\u00g9"`, `"\u00e"`, `"\x"`, `"\/"`,
	`"\b\f\n\r\t\"\\"`, "\"a\x01\"", "\"a\x7f\"", "\"\xff\xfe\"", `"unterminated`, `"\`, `"\u`,
	"\x00", `{"a":1}` + "\x00", `[1,2,3]x`, `{"":""}`, `{"a":{"b":{"c":{}}}}`, "\u00a0{}",
}

func TestValidMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, c := range validCases {
		requireLikeJSON(t, []byte(c))
	}
}

// Nesting counts open containers, empty ones too, up to encoding/json's
// limit of 10,000; beyond 32 the stack moves to the heap.
func TestValidDepth(t *testing.T) {
	t.Parallel()
	for _, depth := range []int{31, 32, 33, 200, 9999, 10000, 10001, 20000} {
		for _, open := range []string{"[", `{"a":`} {
			closeBy := map[string]string{"[": "]", `{"a":`: "}"}[open]
			for _, inner := range []string{"", "1", "[]"} {
				b := []byte(strings.Repeat(open, depth) + inner + strings.Repeat(closeBy, depth))
				ok, _ := wire.Valid(b)
				require.Equal(t, json.Valid(b), ok, "depth %d, %s%s", depth, open, inner)
			}
		}
	}
}

// Random JSON with random whitespace, and random mutations of it (seeded:
// a failure names its seed).
func TestValidRandom(t *testing.T) {
	t.Parallel()
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 14))
		b := randomJSON(rng, nil, 0)
		requireLikeJSON(t, b)
		for range 20 {
			m := bytes.Clone(b)
			if len(m) > 0 {
				switch rng.IntN(3) {
				case 0:
					const tokens = "{}[],:\"\\ 0-.eE+tfnu\x01"
					m[rng.IntN(len(m))] = tokens[rng.IntN(len(tokens))]
				case 1:
					m = m[:rng.IntN(len(m))]
				default:
					i := rng.IntN(len(m))
					m = append(m[:i], m[i+1:]...)
				}
			}
			requireLikeJSON(t, m)
		}
	}
}

// randomJSON appends a random value, with whitespace between tokens now
// and then.
func randomJSON(rng *rand.Rand, b []byte, depth int) []byte {
	space := func() {
		if rng.IntN(4) == 0 {
			b = append(b, " \t\n\r"[rng.IntN(4)])
		}
	}
	space()
	kind := rng.IntN(8)
	if depth > 4 {
		kind = 2 + rng.IntN(6)
	}
	switch kind {
	case 0:
		b = append(b, '{')
		for i := range rng.IntN(4) {
			if i > 0 {
				b = append(b, ',')
			}
			space()
			b = randomString(rng, b)
			space()
			b = append(b, ':')
			b = randomJSON(rng, b, depth+1)
		}
		space()
		b = append(b, '}')
	case 1:
		b = append(b, '[')
		for i := range rng.IntN(4) {
			if i > 0 {
				b = append(b, ',')
			}
			b = randomJSON(rng, b, depth+1)
		}
		space()
		b = append(b, ']')
	case 2, 3:
		b = randomString(rng, b)
	case 4, 5:
		b = append(b, []string{"0", "-1", "12.5", "3e7", "-0.25E-3", "1234567890"}[rng.IntN(6)]...)
	default:
		b = append(b, []string{"true", "false", "null"}[rng.IntN(3)]...)
	}
	space()
	return b
}

func randomString(rng *rand.Rand, b []byte) []byte {
	b = append(b, '"')
	for range rng.IntN(8) {
		b = append(b, []string{"a", " ", "\\n", "\\\"", "\\u00e9", "é", "\\/", "<"}[rng.IntN(8)]...)
	}
	return append(b, '"')
}

func FuzzValid(f *testing.F) {
	for _, c := range validCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		requireLikeJSON(t, b)
	})
}

func BenchmarkValid(b *testing.B) {
	for _, c := range []struct{ name, payload string }{
		{"progress", `{"progress":0.6,"message":"Processing file 3 of 10","stage":"upload"}`},
		// A model's message streamed as it is written: long plain text.
		{"message", `{"message":"` + strings.Repeat("The quick brown fox jumps over the lazy dog. ", 12) + `","level":"info"}`},
	} {
		payload := []byte(c.payload)
		b.Run(c.name+"/wire.Valid", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				wire.Valid(payload)
			}
		})
		b.Run(c.name+"/json.Valid", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				json.Valid(payload)
			}
		})
	}
}

// TestValidStringAtEveryOffset puts each byte that ends or interrupts a
// string's plain run at every offset of strings around the 8-byte steps
// in which Valid skips plain bytes, with plain bytes (ASCII and UTF-8) on
// either side, and compares with encoding/json.
func TestValidStringAtEveryOffset(t *testing.T) {
	specials := []string{`"`, `\"`, `\\`, `\n`, `\u00e9`, `\u00g9`, `\x`, `\`, "\x00", "\x1f", "\n", "\x7f", "\x80", "é", " ", "!", "#", "[", "]", "\xff"}
	for n := range 20 {
		for p := 0; p <= n; p++ {
			for _, sp := range specials {
				s := strings.Repeat("a", p) + sp + strings.Repeat("é", (n-p)/2) + strings.Repeat("b", (n-p)%2)
				requireLikeJSON(t, []byte(`"`+s+`"`))
				requireLikeJSON(t, []byte(`{"k":"`+s+`","n":1}`))
				requireLikeJSON(t, []byte(`["`+s)) // unterminated
			}
		}
	}
}
