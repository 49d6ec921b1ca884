// Package protocoltest checks Go values and HTTP traffic against the
// TaskBridge v1 wire contract kept in the repository's protocol/ directory.
//
// It is test support: only _test.go files import it. It loads the contract
// from the source tree (located from this package's own source file, so it
// works from any package's tests on a fresh clone) and offers
//
//   - JSON Schema (draft 2020-12, date-time format asserted) validation of
//     event envelopes and client actions: [ValidateEvent],
//     [ValidateActionRequest], [ValidateActionResponse] and their non-fatal
//     variants [EventError], [ActionRequestError], [ActionResponseError];
//   - validation of the WebSocket control frames against the OpenAPI
//     components: [ValidateSubscribeFrame], [ValidateSubscriptionConfirmed],
//     [ValidateHeartbeat], and [ValidateServerFrame] for any frame a server
//     sends;
//   - validation of any OpenAPI component schema ([ComponentError]) and of the
//     error envelope ([ValidateErrorResponse]);
//   - validation of HTTP responses against the OpenAPI document:
//     [ValidateResponse] and [ValidateHTTP];
//   - access to the fixtures in protocol/examples: [Fixture], [Fixtures].
//
// The ValidateX functions take a [testing.TB] and fail the test; the XError
// functions return an error instead, for property and fuzz tests.
// Schemas and the OpenAPI document are loaded once per test binary.
package protocoltest
