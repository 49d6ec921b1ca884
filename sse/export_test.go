package sse

import "time"

// SetQuietAfter sets how long a stream must have sent nothing for its next
// step to run on a short-lived goroutine: 0 offloads every step. Call it
// before h serves.
func SetQuietAfter(h *Handler, d time.Duration) { h.quietAfter = d }
