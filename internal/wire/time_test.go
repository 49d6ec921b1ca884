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

// AppendTime writes exactly what time.Time.AppendFormat writes with
// TimeLayout, at the edges of every field, in other zones and outside the
// years RFC 3339 can express.
func TestAppendTimeMatchesAppendFormat(t *testing.T) {
	t.Parallel()
	zones := []*time.Location{time.UTC, time.FixedZone("east", 14*3600), time.FixedZone("west", -(12*3600 + 30*60))}
	var times []time.Time
	for _, y := range []int{-1, 0, 1, 9, 10, 99, 100, 999, 1000, 1969, 1970, 2000, 2024, 2026, 9999, 10000, 123456} {
		for _, mo := range []time.Month{1, 2, 9, 10, 12} {
			for _, d := range []int{1, 9, 10, 28, 29, 31} {
				for _, hms := range [][3]int{{0, 0, 0}, {9, 9, 9}, {10, 10, 10}, {23, 59, 59}} {
					for _, ns := range []int{0, 1, 999_999, 1_000_000, 9_999_999, 10_000_000, 99_999_999, 100_000_000, 999_999_999} {
						times = append(times, time.Date(y, mo, d, hms[0], hms[1], hms[2], ns, zones[(y+d+ns)%len(zones)]))
					}
				}
			}
		}
	}
	times = append(times, time.Time{}, time.Unix(0, 0), time.Unix(1<<40, 5e8), time.Unix(-1<<40, 5e8))
	for _, at := range times {
		want := at.UTC().AppendFormat([]byte("x"), wire.TimeLayout)
		require.Equal(t, string(want), string(wire.AppendTime([]byte("x"), at)), "%v", at)
	}
}

func FuzzAppendTime(f *testing.F) {
	f.Add(int64(0), int64(0))
	f.Add(int64(1777896000), int64(123_999_999))
	f.Add(int64(-62135596800), int64(0))     // year 1
	f.Add(int64(253402300799), int64(999e6)) // 9999-12-31T23:59:59.999
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		at := time.Unix(sec, nsec)
		want := at.UTC().AppendFormat(nil, wire.TimeLayout)
		if got := wire.AppendTime(nil, at); string(got) != string(want) {
			t.Fatalf("AppendTime(%d, %d) = %s, want %s", sec, nsec, got, want)
		}
	})
}

func BenchmarkAppendTime(b *testing.B) {
	at := time.Date(2026, 5, 4, 12, 0, 10, 123_456_789, time.UTC)
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = wire.AppendTime(buf[:0], at)
	}
}
