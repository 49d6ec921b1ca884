package wire

import (
	"encoding/binary"
	"math/bits"
)

// maxDepth is encoding/json's nesting limit: a value nested deeper is not
// valid JSON to json.Valid.
const maxDepth = 10000

// Valid reports whether b is valid JSON, exactly as json.Valid does, and
// whether it is compact: no whitespace outside its strings. It is one pass
// without allocation (up to 32 levels of nesting) and a shallow stack,
// where json.Valid checks byte by byte through a scanner's function
// values; the envelope encoder checks every payload it writes with it.
func Valid(b []byte) (ok, compact bool) {
	var stackBuf [32]byte // the open containers: '{' or '['
	stack := stackBuf[:0]
	compact = true
	i := 0
	for {
		// A value is expected at b[i], after optional whitespace.
		if i, compact = skipSpace(b, i, compact); i >= len(b) {
			return false, compact
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if len(stack) >= maxDepth {
				return false, compact
			}
			stack = append(stack, c)
			i++
			if i, compact = skipSpace(b, i, compact); i >= len(b) {
				return false, compact
			}
			if c == '{' && b[i] == '}' || c == '[' && b[i] == ']' {
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				if i, compact = member(b, i, compact); i < 0 {
					return false, compact
				}
			}
			continue // the first element's value
		case c == '"':
			if i = endOfString(b, i); i < 0 {
				return false, compact
			}
		case c == '-' || '0' <= c && c <= '9':
			if i = endOfNumber(b, i); i < 0 {
				return false, compact
			}
		case c == 't':
			if i = literal(b, i, "true"); i < 0 {
				return false, compact
			}
		case c == 'f':
			if i = literal(b, i, "false"); i < 0 {
				return false, compact
			}
		case c == 'n':
			if i = literal(b, i, "null"); i < 0 {
				return false, compact
			}
		default:
			return false, compact
		}
		// After a value: close containers, or go on to the next element.
		for {
			i, compact = skipSpace(b, i, compact)
			if len(stack) == 0 {
				return i == len(b), compact
			}
			if i >= len(b) {
				return false, compact
			}
			open, c := stack[len(stack)-1], b[i]
			if open == '{' && c == '}' || open == '[' && c == ']' {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if c != ',' {
				return false, compact
			}
			i++
			if open == '{' {
				if i, compact = skipSpace(b, i, compact); i >= len(b) {
					return false, compact
				}
				if i, compact = member(b, i, compact); i < 0 {
					return false, compact
				}
			}
			break
		}
	}
}

// isSpace reports JSON whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace returns the index of the first non-whitespace byte at or after
// i, and compact cleared if it skipped any.
func skipSpace(b []byte, i int, compact bool) (int, bool) {
	for i < len(b) && isSpace(b[i]) {
		i++
		compact = false
	}
	return i, compact
}

// member checks an object member's key and colon at b[i] and returns the
// index after the colon, or -1.
func member(b []byte, i int, compact bool) (int, bool) {
	if b[i] != '"' {
		return -1, compact
	}
	if i = endOfString(b, i); i < 0 {
		return -1, compact
	}
	if i, compact = skipSpace(b, i, compact); i >= len(b) || b[i] != ':' {
		return -1, compact
	}
	return i + 1, compact
}

// endOfString returns the index after the string starting at b[i] (a
// quote), or -1. Like encoding/json, it accepts any byte from 0x20 on,
// invalid UTF-8 included. It skips eight plain bytes at a time (see
// specialBytes) and looks at the bytes one by one only from a quote, a
// backslash or a control character on, and in the last few of b.
func endOfString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		for i+8 <= len(b) {
			if m := specialBytes(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// specialBytes returns a mask whose lowest set bit is the high bit of the
// first of w's eight bytes (little-endian: the first in memory) that is a
// quote, a backslash or below 0x20, and 0 when there is none (see
// flagBytes: the lowest flag is exact).
func specialBytes(w uint64) uint64 {
	return flagBytes(w^ones*'"') | flagBytes(w^ones*'\\') | belowBytes(w, 0x20)
}

// flagBytes sets the high bit of x's zero bytes, with the zero-byte test
// x-ones & ^x & highs. A borrow may also flag a byte after a zero one, but
// never one before the first, so the lowest flag is exact.
func flagBytes(x uint64) uint64 { return (x - ones) &^ x & highs }

// belowBytes sets the high bit of w's bytes below n (n <= 0x80), as
// flagBytes does for zero bytes: the lowest flag is exact.
func belowBytes(w uint64, n byte) uint64 { return (w - ones*uint64(n)) &^ w & highs }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// endOfNumber returns the index after the number starting at b[i], or -1:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func endOfNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case isDigit(b[i]):
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	return i
}

// literal returns the index after word at b[i], or -1.
func literal(b []byte, i int, word string) int {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return -1
	}
	return i + len(word)
}
