package wire

import "time"

// TimeLayout is the one format of every time the library writes on the
// wire (event createdAt, payload times, task summaries, error envelopes,
// SSE heartbeats): RFC 3339 in UTC with exactly three fractional digits,
// as in "2026-05-04T12:00:00.000Z". Finer precision is truncated. Clients
// may parse it with a fixed pattern; the library itself accepts any RFC
// 3339 time when it decodes.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// AppendTime appends t in [TimeLayout] to dst. It writes the digits itself
// (every event's createdAt goes through it, and time.Time.AppendFormat
// interprets its layout on every call); the output is exactly
// AppendFormat's. Years outside 0000..9999, which RFC 3339 cannot express,
// are written as time.Time.AppendFormat writes them.
func AppendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, TimeLayout)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / int(time.Millisecond)
	return append(dst,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// FormatTime returns t in [TimeLayout].
func FormatTime(t time.Time) string {
	var b [len(TimeLayout)]byte
	return string(AppendTime(b[:0], t))
}
