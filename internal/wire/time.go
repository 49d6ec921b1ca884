package wire

import "time"

// TimeLayout is the one format of every time the library writes on the
// wire (event createdAt, payload times, task summaries, error envelopes,
// SSE heartbeats): RFC 3339 in UTC with exactly three fractional digits,
// as in "2026-05-04T12:00:00.000Z". Finer precision is truncated. Clients
// may parse it with a fixed pattern; the library itself accepts any RFC
// 3339 time when it decodes.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// AppendTime appends t in [TimeLayout] to dst. Years outside 0000..9999,
// which RFC 3339 cannot express, are written as time.Time.AppendFormat
// writes them.
func AppendTime(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, TimeLayout)
}

// FormatTime returns t in [TimeLayout].
func FormatTime(t time.Time) string {
	var b [len(TimeLayout)]byte
	return string(AppendTime(b[:0], t))
}
