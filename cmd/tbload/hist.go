package main

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"sync"
	"time"
)

// histogram counts durations in log-linear buckets: 16 per power of two,
// so a percentile is accurate to about 6%. Recording is a few instructions
// and no allocation; each subscriber keeps its own and they are merged.
type histogram struct {
	counts [64 * histSub]uint64
	n      uint64
	max    int64
}

const (
	histSubBits = 4
	histSub     = 1 << histSubBits
)

// record adds one duration in nanoseconds; negative ones count as zero.
func (h *histogram) record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.counts[histBucket(uint64(ns))]++
	h.n++
	h.max = max(h.max, ns)
}

func histBucket(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - 1 - histSubBits // v >> e is in [16, 32)
	return (e+1)*histSub + int(v>>e) - histSub
}

// histLow returns the smallest value of bucket b.
func histLow(b int) uint64 {
	if b < histSub {
		return uint64(b)
	}
	e := b/histSub - 1
	return uint64(histSub+b%histSub) << e
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the q-quantile (0 < q <= 1), as the middle of its
// bucket, capped at the maximum.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			mid := (histLow(b) + histLow(b+1)) / 2
			return time.Duration(min(int64(mid), h.max))
		}
	}
	return time.Duration(h.max)
}

// histJSON is a histogram on the wire: its non-empty buckets by index.
type histJSON struct {
	Counts map[int]uint64 `json:"counts"`
	N      uint64         `json:"n"`
	Max    int64          `json:"max"`
}

// MarshalJSON implements json.Marshaler.
func (h *histogram) MarshalJSON() ([]byte, error) {
	w := histJSON{Counts: map[int]uint64{}, N: h.n, Max: h.max}
	for b, c := range h.counts {
		if c > 0 {
			w.Counts[b] = c
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON implements json.Unmarshaler.
func (h *histogram) UnmarshalJSON(b []byte) error {
	var w histJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*h = histogram{n: w.N, max: w.Max}
	for b, c := range w.Counts {
		if b < 0 || b >= len(h.counts) {
			return fmt.Errorf("histogram bucket %d out of range", b)
		}
		h.counts[b] = c
	}
	return nil
}

// since returns what h recorded after earlier, a snapshot of the same
// histogram; the maximum is h's (the whole run's).
func (h *histogram) since(earlier *histogram) *histogram {
	d := *h
	for i, c := range earlier.counts {
		d.counts[i] -= c
	}
	d.n -= earlier.n
	return &d
}

// syncHist is a histogram many goroutines record into.
type syncHist struct {
	mu sync.Mutex
	h  histogram
}

func (s *syncHist) record(ns int64) {
	s.mu.Lock()
	s.h.record(ns)
	s.mu.Unlock()
}

// snapshot returns a copy of the histogram.
func (s *syncHist) snapshot() *histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.h
	return &h
}
