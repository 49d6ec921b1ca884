package storetest_test

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/memstore"
	"github.com/taskbridge-go/taskbridge/storetest"
)

// brokenEnv names the fault of the stores of a TestStressFindsFaults
// child process.
const brokenEnv = "STORETEST_BROKEN"

// skewedLeases is a store whose AcquireLease reads the current lease two
// hours late, so that it takes a lease another holder still has.
type skewedLeases struct{ *memstore.Store }

func (s skewedLeases) AcquireLease(ctx context.Context, taskID, holder string, now time.Time, ttl time.Duration) (taskbridge.Lease, bool, error) {
	return s.Store.AcquireLease(ctx, taskID, holder, now.Add(2*time.Hour), ttl)
}

// forgetfulKeys is a store whose Append ignores idempotency keys.
type forgetfulKeys struct{ *memstore.Store }

func (s forgetfulKeys) Append(ctx context.Context, ev taskbridge.TaskEvent) (taskbridge.TaskEvent, error) {
	key := ev.IdempotencyKey
	ev.IdempotencyKey = ""
	got, err := s.Store.Append(ctx, ev)
	got.IdempotencyKey = key
	return got, err
}

// TestStressFindsFaults checks that the stress section fails a store that
// lets two holders have one lease, and one that appends twice under one
// idempotency key: bugs that only concurrent callers bring out. Each case
// runs the section in a child process (this test again, with
// STORETEST_BROKEN naming the fault), which must fail.
func TestStressFindsFaults(t *testing.T) {
	child := os.Getenv(brokenEnv)
	for fault, want := range map[string][]string{
		// Two holders of a long lease, or overlapping grants of a short one.
		"leases": {"succeeded while 1 other workers held the lease", "got the lease at"},
		"keys":   {"the append that returned Seq"},
	} {
		t.Run(fault, func(t *testing.T) {
			if child != "" {
				storetest.Run(t, brokenHarness(fault))
				return
			}
			if testing.Short() {
				t.Skip("runs the stress section in a child process")
			}
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestStressFindsFaults$/^"+fault+"$/^Stress$", "-test.count=1")
			cmd.Env = append(os.Environ(), brokenEnv+"="+fault, storetest.StressSeedsEnv+"=3")
			out, err := cmd.CombinedOutput()
			require.Error(t, err, "the stress section passed a store whose %s are broken:\n%s", fault, out)
			require.True(t, slices.ContainsFunc(want, func(w string) bool { return strings.Contains(string(out), w) }),
				"the stress section failed a store whose %s are broken, but not for that:\n%s", fault, out)
		})
	}
}

// brokenHarness returns a harness of memstores with the given fault.
func brokenHarness(fault string) storetest.Harness {
	return storetest.Harness{
		New: func(t *testing.T) taskbridge.Store {
			s := memstore.New(memstore.Config{})
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			if fault == "leases" {
				return skewedLeases{s}
			}
			return forgetfulKeys{s}
		},
	}
}
