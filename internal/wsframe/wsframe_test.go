package wsframe

import (
	"bytes"
	"testing"
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
