package httpapi

import (
	"errors"
	"mime"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/taskbridge-go/taskbridge"
)

// drainGrace is how long net/http may go on reading a body that a route
// did not read to its end, after the route returned: an honest client
// sends the rest at once, and the connection can be kept.
const drainGrace = time.Second

// bodyRead is one request body under a read deadline.
type bodyRead struct {
	reads *bodyReads
	rc    *http.ResponseController
	// deadline is the read deadline set; guarded by bodyReads.mu, like
	// done.
	deadline time.Time
	// done: the body was read to its end, or the route returned.
	done bool
}

// bodyKey is the context key of a request's *bodyRead.
type bodyKey struct{}

// bodyOf returns r's body read, nil when it has none.
func bodyOf(r *http.Request) *bodyRead {
	br, _ := r.Context().Value(bodyKey{}).(*bodyRead)
	return br
}

// bodyReads tracks the request bodies being read, each under a read
// deadline, so that [Handler.Close] can end them.
type bodyReads struct {
	mu     sync.Mutex
	closed bool
	active map[*bodyRead]struct{}
}

// errBodiesClosed refuses a body after [Handler.Close].
var errBodiesClosed = &statusError{
	status: http.StatusServiceUnavailable, code: taskbridge.CodeUnavailable,
	msg: "The server is shutting down; retry later",
}

// bodyTimeout is how long r's body may take: UploadLimits.ReadTimeout for
// a multipart body, Config.BodyReadTimeout for any other.
func (h *Handler) bodyTimeout(r *http.Request) time.Duration {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "multipart/form-data" {
		return h.cfg.Uploads.ReadTimeout
	}
	return h.cfg.BodyReadTimeout
}

// start puts a read deadline of timeout from now on the body of the
// request w answers and registers it, so that close can end it. After
// close it fails with 503, and the deadline is set in the past so that
// net/http does not wait for the body it will try to drain. Response
// writers that do not support deadlines (a recorder, a host's wrapper
// without Unwrap) read without one.
func (b *bodyReads) start(w http.ResponseWriter, timeout time.Duration) (*bodyRead, error) {
	rc := http.NewResponseController(w)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		_ = rc.SetReadDeadline(time.Now())
		return nil, errBodiesClosed
	}
	br := &bodyRead{reads: b, rc: rc, deadline: time.Now().Add(timeout)}
	if rc.SetReadDeadline(br.deadline) != nil {
		br.rc = nil
	}
	b.active[br] = struct{}{}
	return br, nil
}

// complete records that br's body was read to its end and clears its
// deadline, so that the rest of the request is not cut off (net/http
// watches an idle connection with a read, which a passed deadline would
// fail, cancelling the request's context). A nil br does nothing.
func (br *bodyRead) complete() {
	if br == nil {
		return
	}
	br.end(time.Time{})
}

// finish unregisters br once its route returned. A body not read to its
// end keeps a deadline of at most drainGrace from now.
func (br *bodyRead) finish() {
	br.end(time.Now().Add(drainGrace))
}

// end marks br done and moves its deadline to d (zero: none), unless br is
// done already or d is later than the deadline it has.
func (br *bodyRead) end(d time.Time) {
	b := br.reads
	b.mu.Lock()
	defer b.mu.Unlock()
	if br.done {
		return
	}
	br.done = true
	delete(b.active, br)
	if !d.IsZero() && d.After(br.deadline) {
		return
	}
	br.deadline = d
	if br.rc != nil {
		_ = br.rc.SetReadDeadline(d)
	}
}

// close ends every registered body read by moving its deadline to now;
// later starts fail.
func (b *bodyReads) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	now := time.Now()
	for br := range b.active {
		br.deadline = now
		if br.rc != nil {
			_ = br.rc.SetReadDeadline(now)
		}
	}
}

// cutOff maps a body read that failed at its deadline to 503 after close
// and to 408 with code otherwise; other errors give nil.
func (b *bodyReads) cutOff(err error, code string, timeout time.Duration) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return errBodiesClosed
	}
	return &statusError{
		status: http.StatusRequestTimeout, code: code,
		msg: "The request body did not arrive within " + timeout.String(),
	}
}
