// Package bridge gives the transports (httpapi, sse, ws) what they need of
// a *taskbridge.Service beyond its public API: its logger and clock, and
// subscriptions on its fan-out engine with a transport's options. It is the
// one seam between the root package and the transports' plumbing.
//
// Package taskbridge installs its [Hooks] from an init function; a
// transport reads them once, from a package-level variable:
//
//	var svcHooks = bridge.For[taskbridge.Service, taskbridge.AuthContext]()
//
// and calls them with its service: svcHooks.Subscribe(ctx, svc, auth, ...).
// The type parameters exist because this package cannot name taskbridge's
// types (taskbridge imports it); [For] checks them against what was
// installed, so a mismatch fails at program start, not in a request.
package bridge
