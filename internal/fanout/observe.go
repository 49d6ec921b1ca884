package fanout

import (
	"context"
	"errors"
	"os"
	"time"
)

// Observer receives what happens to the subscriptions that have a
// Transport: every frame handed out, every heartbeat due, and the end. Its
// functions are called on the subscription's consumer goroutine (the
// transport's) and must not block; a nil function is skipped.
type Observer struct {
	// Deliver is called for every frame Next hands out; replayed reports
	// a frame read from the Source by this subscription (history) rather
	// than taken from the live window.
	Deliver func(sub *Subscription, f *Frame, replayed bool)
	// Heartbeat is called when HeartbeatDue reports true.
	Heartbeat func(sub *Subscription)
	// End is called once, by Close.
	End func(sub *Subscription, end End)
}

// Reasons a subscription ended, as End.Reason.
const (
	EndClientGone   = "client_gone"
	EndSlowConsumer = "slow_consumer"
	EndShutdown     = "shutdown"
	EndTerminal     = "terminal"
	EndExpired      = "events_expired"
	EndError        = "error"
)

// End describes a subscription that has ended.
type End struct {
	// Reason is one of the End* constants.
	Reason string
	// Err is the error that ended it, if any (a write error for
	// EndSlowConsumer, a read error for EndError).
	Err error
	// Lifetime is the time from Subscribe to Close.
	Lifetime time.Duration
	// Replayed counts the frames read from the Source by this
	// subscription; Delivered counts every frame handed out (replayed or
	// live).
	Replayed, Delivered int64
}

// ID returns the subscription's id, unique within its hub (0 for a
// subscription without a Transport).
func (sub *Subscription) ID() uint64 { return sub.id }

// Transport returns SubscribeOpts.Transport.
func (sub *Subscription) Transport() string { return sub.transport }

// SetEnd records why the transport is ending the subscription, before it
// calls Close: EndClientGone, EndSlowConsumer (with the write error) or
// EndShutdown. Without it Close derives the reason from what Next
// returned: EndTerminal after the terminal event, EndShutdown for
// ErrClosed, EndExpired for ErrExpired, EndClientGone for a context error
// or nothing, EndError for anything else. The first call wins.
func (sub *Subscription) SetEnd(reason string, err error) {
	if sub.endReason == "" {
		sub.endReason, sub.endErr = reason, err
	}
}

// observeEnd reports the end to the observer. Called once, by Close.
func (sub *Subscription) observeEnd() {
	if sub.obs == nil || sub.obs.End == nil {
		return
	}
	end := End{
		Reason: sub.endReason, Err: sub.endErr,
		Lifetime: time.Since(sub.started), Replayed: sub.replayed, Delivered: sub.delivered,
	}
	if end.Reason == "" {
		end.Reason, end.Err = sub.derivedEnd()
	}
	sub.obs.End(sub, end)
}

// derivedEnd classifies how the subscription ended from what it handed out
// and what Next returned.
func (sub *Subscription) derivedEnd() (string, error) {
	err := sub.nextErr
	if p := sub.failErr.Load(); err == nil && p != nil {
		err = *p
	}
	cfg := &sub.h.cfg
	switch {
	case sub.done:
		return EndTerminal, nil
	case err == nil:
		return EndClientGone, nil
	case errors.Is(err, cfg.ErrClosed):
		return EndShutdown, nil
	case errors.Is(err, cfg.ErrExpired):
		return EndExpired, err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return EndClientGone, nil
	}
	return EndError, err
}

// WriteEnd classifies a failed write to a client: EndSlowConsumer when the
// write deadline passed (the client did not take the bytes in time),
// EndClientGone otherwise (the connection was closed or reset).
func WriteEnd(err error) string {
	var te interface{ Timeout() bool }
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &te) && te.Timeout()) {
		return EndSlowConsumer
	}
	return EndClientGone
}
