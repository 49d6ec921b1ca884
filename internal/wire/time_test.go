package wire_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge-go/taskbridge/internal/wire"
)

// fixed is the pattern a client with a fixed parser expects.
var fixed = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

func TestFormatTime(t *testing.T) {
	t.Parallel()
	cest := time.FixedZone("CEST", 2*3600)
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC), "2026-05-04T12:00:00.000Z"}, // zero milliseconds
		{time.Date(2026, 5, 4, 12, 0, 10, 500_000_000, time.UTC), "2026-05-04T12:00:10.500Z"},
		{time.Date(2026, 5, 4, 12, 0, 10, 123_999_999, time.UTC), "2026-05-04T12:00:10.123Z"}, // truncated
		{time.Date(2026, 5, 4, 14, 0, 0, 7, cest), "2026-05-04T12:00:00.000Z"},                // in UTC
		{time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, time.UTC), "2026-12-31T23:59:59.999Z"},
		{time.Time{}, "0001-01-01T00:00:00.000Z"},
	} {
		got := wire.FormatTime(c.at)
		require.Equal(t, c.want, got)
		require.Regexp(t, fixed, got)
		require.Equal(t, "x"+c.want, string(wire.AppendTime([]byte("x"), c.at)))
		back, err := time.Parse(wire.TimeLayout, got)
		require.NoError(t, err)
		require.True(t, back.Equal(c.at.Truncate(time.Millisecond)), "%s parses back", got)
	}
}
