package protocoltest

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema files in protocol/schemas.
const (
	eventSchemaFile          = "task_event.schema.json"
	actionRequestSchemaFile  = "task_client_action.schema.json"
	actionResponseSchemaFile = "task_client_action_response.schema.json"
)

// schemaBaseURL is the (never fetched) base the schema files are registered
// under; the files have no $id and reference nothing outside themselves.
const schemaBaseURL = "https://taskbridge.invalid/protocol/schemas/"

var schemas struct {
	once     sync.Once
	err      error
	compiled map[string]*jsonschema.Schema
}

// compiledSchema returns the compiled JSON Schema of a protocol/schemas file.
// All three schemas are compiled once, as draft 2020-12 with format
// assertions on (so "format": "date-time" is checked).
func compiledSchema(file string) (*jsonschema.Schema, error) {
	schemas.once.Do(func() {
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		files := []string{eventSchemaFile, actionRequestSchemaFile, actionResponseSchemaFile}
		for _, f := range files {
			b, err := os.ReadFile(Path("schemas", f))
			if err != nil {
				schemas.err = fmt.Errorf("protocoltest: %w", err)
				return
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				schemas.err = fmt.Errorf("protocoltest: parsing %s: %w", f, err)
				return
			}
			if err := c.AddResource(schemaBaseURL+f, doc); err != nil {
				schemas.err = fmt.Errorf("protocoltest: adding %s: %w", f, err)
				return
			}
		}
		compiled := make(map[string]*jsonschema.Schema, len(files))
		for _, f := range files {
			s, err := c.Compile(schemaBaseURL + f)
			if err != nil {
				schemas.err = fmt.Errorf("protocoltest: compiling %s: %w", f, err)
				return
			}
			compiled[f] = s
		}
		schemas.compiled = compiled
	})
	if schemas.err != nil {
		return nil, schemas.err
	}
	return schemas.compiled[file], nil
}

// validateWithSchema validates one JSON document (trailing data is an error)
// against a protocol/schemas file.
func validateWithSchema(file string, raw []byte) error {
	s, err := compiledSchema(file)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("not a single JSON document: %w", err)
	}
	return s.Validate(inst)
}

// EventError validates raw against schemas/task_event.schema.json (the
// TaskEvent envelope with its per-type payload rules) and returns why it
// does not conform, or nil.
func EventError(raw []byte) error { return validateWithSchema(eventSchemaFile, raw) }

// ActionRequestError validates raw against
// schemas/task_client_action.schema.json (the body of POST .../actions).
func ActionRequestError(raw []byte) error {
	return validateWithSchema(actionRequestSchemaFile, raw)
}

// ActionResponseError validates raw against
// schemas/task_client_action_response.schema.json.
func ActionResponseError(raw []byte) error {
	return validateWithSchema(actionResponseSchemaFile, raw)
}

// ValidateEvent fails t unless raw is a TaskEvent envelope accepted by
// schemas/task_event.schema.json.
func ValidateEvent(t testing.TB, raw []byte) {
	t.Helper()
	if err := EventError(raw); err != nil {
		t.Fatalf("protocoltest: invalid TaskEvent: %v\n%s", err, excerpt(raw))
	}
}

// ValidateActionRequest fails t unless raw is accepted by
// schemas/task_client_action.schema.json.
func ValidateActionRequest(t testing.TB, raw []byte) {
	t.Helper()
	if err := ActionRequestError(raw); err != nil {
		t.Fatalf("protocoltest: invalid TaskClientAction: %v\n%s", err, excerpt(raw))
	}
}

// ValidateActionResponse fails t unless raw is accepted by
// schemas/task_client_action_response.schema.json.
func ValidateActionResponse(t testing.TB, raw []byte) {
	t.Helper()
	if err := ActionResponseError(raw); err != nil {
		t.Fatalf("protocoltest: invalid TaskClientActionResponse: %v\n%s", err, excerpt(raw))
	}
}

// excerpt shortens a document for a failure message.
func excerpt(raw []byte) string {
	const max = 2048
	if len(raw) <= max {
		return string(raw)
	}
	return string(raw[:max]) + "…"
}
