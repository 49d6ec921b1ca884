// Package e2e holds end-to-end tests of the transports together: the
// httpapi handler with the sse and ws handlers mounted in it, over a real
// service and in-memory store, driven by clients that behave like the
// TaskBridge Android SDK. The package itself is empty; its subpackage
// streamtest holds helpers shared by the transports' tests.
package e2e
