package taskbridge

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// encodeFrequent writes exactly what json.Marshal writes, for random
// progress values, stages, messages and levels, including strings that
// need escaping (quotes, control and HTML characters, U+2028, invalid
// UTF-8) and the values at the edges of the float format.
func TestEncodeFrequentMatchesJSON(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	pieces := []string{"", "a", "upload", "é", "\"", "\\", "\n", "\x00", "\x1f", "<", ">", "&", "\u2028", "\u2029", "\xff", "\x7f", "日本", " ", "/"}
	str := func() string {
		var s string
		for range r.IntN(4) {
			s += pieces[r.IntN(len(pieces))]
		}
		return s
	}
	floats := []float64{0, math.Copysign(0, -1), 1e-6, 1e-7, 5e-324, 0.1, 1.0 / 3, 33.333333333333336, 99.99999999999999, 100, 1, 50}
	check := func(p Payload) {
		want, err := json.Marshal(p)
		require.NoError(t, err)
		got, ok := encodeFrequent(p)
		if !ok {
			return
		}
		require.Equal(t, string(want), string(got), "%#v", p)
	}
	fast := 0
	for i := range 20000 {
		progress := r.Float64() * 100
		if i%4 == 0 {
			progress = floats[r.IntN(len(floats))]
		}
		levels := []MessageLevel{"", LevelInfo, LevelWarning, LevelDebug}
		for _, p := range []Payload{
			ProgressPayload{Progress: progress, Stage: str(), Message: str()},
			MessagePayload{Message: str(), Level: levels[r.IntN(len(levels))]},
			StartedPayload{Message: str()},
		} {
			if _, ok := encodeFrequent(p); ok {
				fast++
			}
			check(p)
		}
	}
	require.Greater(t, fast, 50000, "payloads encoded on the fast path")
	_, ok := encodeFrequent(FailedPayload{Code: "X", Message: "m"})
	require.False(t, ok, "other types go to json.Marshal")
}

// BenchmarkEncodePayload is the encoding of a progress payload, the most
// frequent event: the fast path, and json.Marshal for comparison.
func BenchmarkEncodePayload(b *testing.B) {
	p := ProgressPayload{Progress: 42.5, Stage: "upload", Message: "3 of 7 files"}
	b.Run("EncodePayload", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncodePayload(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// appendProgress writes what encoding/json writes for every whole number
// and hundredth from 0 to 100 (its own path), for the floats next to them
// and for -0 (strconv's). Values below 1e-6 other than 0 never reach it
// (encodeFrequent leaves them to json.Marshal, which writes an exponent).
func TestAppendProgress(t *testing.T) {
	check := func(p float64) {
		if p != 0 && math.Abs(p) < 1e-6 {
			return
		}
		want, err := json.Marshal(p)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendProgress(nil, p)), "%v (%b)", p, p)
	}
	for n := range 10001 {
		p := float64(n) / 100
		check(p)
		check(math.Nextafter(p, -1))
		check(math.Nextafter(p, 101))
		check(float64(n) * 0.01) // not always the same float as n/100
	}
	check(math.Copysign(0, -1))
	check(0.005)
	check(99.995)
}

// encodeFrequent sizes its buffer so that it never grows: one allocation
// per payload, also with every optional member and the longest progress
// numbers.
func TestEncodeFrequentAllocatesOnce(t *testing.T) {
	for _, p := range []Payload{
		ProgressPayload{Progress: 0.5, Stage: "render", Message: "rendering page 3 of 7"},
		ProgressPayload{Progress: 12.345678901234567, Stage: "s", Message: "m"},
		ProgressPayload{Progress: 0.0000012345678901234567, Stage: "stage", Message: "message"},
		ProgressPayload{Progress: 100},
		MessagePayload{Message: "hello", Level: LevelWarning},
		StartedPayload{Message: "go"},
	} {
		allocs := testing.AllocsPerRun(100, func() {
			if _, ok := encodeFrequent(p); !ok {
				t.Fatalf("%#v is not encoded on the fast path", p)
			}
		})
		require.Equal(t, 1.0, allocs, "%#v", p)
	}
}
