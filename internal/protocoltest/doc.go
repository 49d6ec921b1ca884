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
//   - validation of HTTP responses against the v1 OpenAPI document and the
//     served one (v1 merged with the library's extensions, every route at
//     its default path): [ValidateResponse] and [ValidateHTTP], or
//     [V1ResponseError] for the v1 document alone;
//   - the served document itself: [BuildServedDocument] merges
//     protocol/openapi/taskbridge.openapi.yaml with
//     httpapi/openapi/taskbridge-extensions.openapi.yaml (go generate
//     ./httpapi writes the result, which httpapi embeds), [ExtensionError]
//     and [ServedDocumentError] check them with kin-openapi, and a
//     [Document] ([ServedDocument], or [LoadDocument] for a handler's own)
//     checks responses, requests ([Document.RequestError]) and SSE frames
//     ([SSEFrameError]) against it; [Operations] lists a document's
//     operations;
//   - access to the fixtures in protocol/examples: [Fixture], [Fixtures].
//
// The ValidateX functions take a [testing.TB] and fail the test; the XError
// functions return an error instead, for property and fuzz tests.
// Schemas and the OpenAPI document are loaded once per test binary.
package protocoltest
