package wsframe

import (
	"crypto/rand"
	"encoding/binary"
)

// Opcodes (RFC 6455 section 5.2). Control frames have the high bit of the
// opcode set.
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// MaxControlPayload is the largest payload a control frame may carry
// (RFC 6455 section 5.5).
const MaxControlPayload = 125

// MaxHeaderSize is the largest frame header: two bytes, a 64-bit extended
// length and a masking key.
const MaxHeaderSize = 2 + 8 + 4

// Header is a parsed frame header.
type Header struct {
	Fin    bool
	RSV    byte // the RSV1, RSV2 and RSV3 bits, where the first byte has them (0x70)
	Opcode byte
	Masked bool
	Length uint64 // payload length
	Size   int    // bytes of the header, masking key included: 2 to MaxHeaderSize
}

// IsControl reports whether the frame is a control frame (close, ping,
// pong or a reserved control opcode).
func (h Header) IsControl() bool { return h.Opcode&0x8 != 0 }

// ParseHeader parses the frame header at the start of b, whatever its
// flags and opcode: 7-bit, 16-bit and 64-bit payload lengths, and the
// masking key when the mask bit is set (its Size counts the key). ok is
// false when b holds only part of a header.
func ParseHeader(b []byte) (h Header, ok bool) {
	if len(b) < 2 {
		return Header{}, false
	}
	h.Fin = b[0]&0x80 != 0
	h.RSV = b[0] & 0x70
	h.Opcode = b[0] & 0x0F
	h.Masked = b[1]&0x80 != 0
	h.Size = 2
	switch n := b[1] & 0x7F; n {
	case 126:
		if len(b) < 4 {
			return Header{}, false
		}
		h.Length = uint64(binary.BigEndian.Uint16(b[2:]))
		h.Size = 4
	case 127:
		if len(b) < 10 {
			return Header{}, false
		}
		h.Length = binary.BigEndian.Uint64(b[2:])
		h.Size = 10
	default:
		h.Length = uint64(n)
	}
	if h.Masked {
		h.Size += 4
	}
	if len(b) < h.Size {
		return Header{}, false
	}
	return h, true
}

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
