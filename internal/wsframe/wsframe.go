package wsframe

import (
	"crypto/rand"
	"encoding/binary"
)

// Opcodes used by taskbridge.
const (
	OpText  = 0x1
	OpClose = 0x8
)

// AppendHeader appends the header of a final frame with the given opcode
// and an n-byte payload; masked sets the mask bit, and the caller appends
// the 4-byte masking key after it.
func AppendHeader(b []byte, opcode byte, masked bool, n int) []byte {
	var m byte
	if masked {
		m = 0x80
	}
	b = append(b, 0x80|opcode)
	switch {
	case n < 126:
		return append(b, m|byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, m|126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, m|127), uint64(n))
	}
}

// AppendClientFrame appends a final client frame with the given opcode and
// payload, masked with a random key as clients must.
func AppendClientFrame(b []byte, opcode byte, payload []byte) []byte {
	b = AppendHeader(b, opcode, true, len(payload))
	var key [4]byte
	_, _ = rand.Read(key[:])
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}
