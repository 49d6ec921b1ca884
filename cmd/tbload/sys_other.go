//go:build !unix

package main

import "time"

// cpuTime is not measured on this platform.
func cpuTime() (user, sys time.Duration) { return 0, 0 }

// residentBytes is not measured on this platform.
func residentBytes() uint64 { return 0 }

// loadAverage is not available on this platform.
func loadAverage() string { return "" }

// machineCPU is not measured on this platform.
func machineCPU() (busy, total time.Duration) { return 0, 0 }
