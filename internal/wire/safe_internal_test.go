package wire

import (
	"strings"
	"testing"
)

// TestSafeStringEveryByte checks safeString against a byte-by-byte
// reference with every byte value at every offset of strings across the
// 8-byte steps it reads.
func TestSafeStringEveryByte(t *testing.T) {
	ref := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
				return false
			}
		}
		return true
	}
	for n := range 20 {
		base := strings.Repeat("aZ9_-.~ ", 3)[:n]
		if !safeString(base) {
			t.Fatalf("safeString(%q) = false", base)
		}
		for p := range n {
			for c := range 256 {
				s := base[:p] + string([]byte{byte(c)}) + base[p+1:]
				if got, want := safeString(s), ref(s); got != want {
					t.Fatalf("safeString(%q) = %v, want %v", s, got, want)
				}
			}
		}
	}
}
