package protocoltest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/taskbridge-go/taskbridge/internal/protocoltest"
)

func ExampleEventError() {
	good := []byte(`{"type":"TASK_MESSAGE","taskId":"t1","eventId":"1",` +
		`"createdAt":"2026-05-04T12:00:00Z","payload":{"message":"hi","level":"info"}}`)
	extra := []byte(`{"type":"TASK_MESSAGE","taskId":"t1","eventId":"1",` +
		`"createdAt":"2026-05-04T12:00:00Z","payload":{"message":"hi","extra":1}}`)
	fmt.Println(protocoltest.EventError(good))
	fmt.Println(protocoltest.EventError(extra) != nil)
	// Output:
	// <nil>
	// true
}

func ExampleResponseError() {
	req := httptest.NewRequest(http.MethodPost, "/api/v1/tasks/t1/cancel", nil)
	header := http.Header{"Content-Type": {"application/json"}}

	ok := []byte(`{"taskId":"t1","status":"CANCELLATION_REQUESTED"}`)
	fmt.Println(protocoltest.ResponseError(req, http.StatusAccepted, header, ok))

	// 422 is not documented for cancel, but every error status must carry
	// the error envelope; this one lacks "code".
	bad := []byte(`{"message":"invalid","details":{},"timestamp":"2026-05-04T12:00:00Z"}`)
	fmt.Println(protocoltest.ResponseError(req, http.StatusUnprocessableEntity, header, bad) != nil)
	// Output:
	// <nil>
	// true
}
