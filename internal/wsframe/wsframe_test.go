package wsframe

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAppendHeader(t *testing.T) {
	for _, tc := range []struct {
		n      int
		masked bool
		want   []byte
	}{
		{0, false, []byte{0x81, 0}},
		{125, false, []byte{0x81, 125}},
		{126, false, []byte{0x81, 126, 0, 126}},
		{0xFFFF, true, []byte{0x81, 0x80 | 126, 0xFF, 0xFF}},
		{0x10000, false, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		if got := AppendHeader(nil, OpText, tc.masked, tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("AppendHeader(%d, masked %v) = %x, want %x", tc.n, tc.masked, got, tc.want)
		}
	}
}

func TestAppendClientFrameMasksPayload(t *testing.T) {
	payload := []byte(`{"action":"subscribe"}`)
	f := AppendClientFrame([]byte("x"), OpText, payload)
	if f[0] != 'x' || f[1] != 0x81 || f[2] != 0x80|byte(len(payload)) {
		t.Fatalf("header %x", f[:3])
	}
	key, masked := f[3:7], f[7:]
	for i := range masked {
		masked[i] ^= key[i&3]
	}
	if !bytes.Equal(masked, payload) {
		t.Fatalf("unmasked payload %q", masked)
	}
}

func TestParseHeaderReadsWhatAppendHeaderWrites(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xFFFF, 0x10000, 1 << 20} {
		for _, masked := range []bool{false, true} {
			b := AppendHeader(nil, OpText, masked, n)
			if masked {
				b = append(b, 1, 2, 3, 4)
			}
			h, ok := ParseHeader(append(b, 0xAA)) // a byte of payload after it
			require.True(t, ok, "n %d masked %v", n, masked)
			require.Equal(t, Header{Fin: true, Opcode: OpText, Masked: masked, Length: uint64(n), Size: len(b)}, h)
			// Any shorter prefix is an incomplete header.
			for i := range len(b) {
				_, ok := ParseHeader(b[:i])
				require.False(t, ok, "n %d masked %v prefix %d", n, masked, i)
			}
		}
	}
}

func TestParseHeaderKeepsFlagsAndOpcode(t *testing.T) {
	h, ok := ParseHeader([]byte{0x40 | 0x20 | OpPing, 3})
	require.True(t, ok)
	require.Equal(t, Header{RSV: 0x60, Opcode: OpPing, Length: 3, Size: 2}, h)
	require.True(t, h.IsControl())

	h, ok = ParseHeader([]byte{0xC0 | OpText, 0x80 | 126, 0x01, 0x00, 9, 9, 9, 9})
	require.True(t, ok)
	require.Equal(t, Header{Fin: true, RSV: 0x40, Opcode: OpText, Masked: true, Length: 256, Size: 8}, h)
	require.False(t, h.IsControl())

	h, ok = ParseHeader([]byte{0x80 | OpClose, 2})
	require.True(t, ok)
	require.True(t, h.IsControl())
	require.Equal(t, byte(OpClose), h.Opcode)

	// The full 64-bit length is reported as sent, even when no real frame
	// could be that long.
	h, ok = ParseHeader([]byte{0x80 | OpBinary, 127, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	require.True(t, ok)
	require.Equal(t, uint64(1<<64-1), h.Length)
	require.Equal(t, 10, h.Size)
}
