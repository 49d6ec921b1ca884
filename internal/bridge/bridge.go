package bridge

import (
	"context"
	"log/slog"
	"time"

	"github.com/taskbridge-go/taskbridge/internal/fanout"
)

// Hooks are the service operations the transports use. S is
// taskbridge.Service and A is taskbridge.AuthContext.
type Hooks[S, A any] struct {
	// Logger returns the service's logger.
	Logger func(svc *S) *slog.Logger
	// Now returns the time on the service's clock, in UTC.
	Now func(svc *S) time.Time
	// Subscribe checks that auth may see the task and that lastEventID is
	// a valid, unexpired cursor, and returns a subscription on the
	// service's fan-out that delivers every event strictly after it. Its
	// errors are taskbridge's sentinels (task not found, invalid cursor,
	// events expired, closed), so a transport can answer them before it
	// commits to a stream; the subscription's Next returns them too. The
	// caller must Close the subscription.
	Subscribe func(ctx context.Context, svc *S, auth A, taskID, lastEventID string, opts fanout.SubscribeOpts) (*fanout.Subscription, error)
}

var installed any

// Install records the hooks. Package taskbridge calls it once, from an
// init function.
func Install[S, A any](h Hooks[S, A]) { installed = h }

// For returns the hooks package taskbridge installed. Call it after
// taskbridge's initialisation (from a package-level variable of a package
// that imports taskbridge); it panics when S and A are not the installed
// types.
func For[S, A any]() Hooks[S, A] {
	h, ok := installed.(Hooks[S, A])
	if !ok {
		panic("bridge: no hooks installed for these types; is package taskbridge imported?")
	}
	return h
}
