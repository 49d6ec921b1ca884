package protocoltest

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestMergeKeepsV1 checks that an extension can add to the v1 document but
// not change what it says.
func TestMergeKeepsV1(t *testing.T) {
	t.Parallel()
	ext := func(y string) map[string]any {
		var m map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(y), &m))
		return m
	}
	for name, tc := range map[string]struct {
		ext     string
		wantErr string
	}{
		"new status": {ext: `{paths: {/api/v1/tasks: {post: {responses: {"410": {description: x}}}}}}`},
		"v1 status": {ext: `{paths: {/api/v1/tasks: {post: {responses: {"409": {description: x}}}}}}`,
			wantErr: "response 409 of post /api/v1/tasks"},
		"new operation field": {ext: `{paths: {/api/v1/tasks: {post: {operationId: createTask}}}}`},
		"v1 operation field": {ext: `{paths: {/api/v1/tasks: {post: {summary: other}}}}`,
			wantErr: "summary of post /api/v1/tasks"},
		"new path": {ext: `{paths: {/x: {get: {responses: {}}}}}`},
		"alias":    {ext: `{components: {schemas: {ErrorResponse: {$ref: "` + v1Ref + `#/components/schemas/ErrorResponse"}}}}`},
		"alias to nothing": {ext: `{components: {schemas: {Nope: {$ref: "` + v1Ref + `#/components/schemas/Nope"}}}}`,
			wantErr: "v1 document lacks"},
		"redefined component": {ext: `{components: {schemas: {ErrorResponse: {type: string}}}}`,
			wantErr: "redefines components/schemas/ErrorResponse"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v1, err := readV1()
			require.NoError(t, err)
			doc, err := mergeDocuments(v1, ext(tc.ext))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "3.1.0", doc["openapi"])
		})
	}
}

func TestReadV1CarriesOverTo31(t *testing.T) {
	t.Parallel()
	v1, err := readV1()
	require.NoError(t, err)
	require.Nil(t, v1["servers"])
	next := dig(v1, "components", "schemas", "PollEventsResponse", "properties", "nextAfterEventId")
	require.Equal(t, map[string]any{"type": []any{"string", "null"}}, next)
	ev := asMap(dig(v1, "components", "schemas", "TaskEvent"))
	require.Equal(t, "TaskEvent", ev["title"]) // the schema file, inlined
	require.NotContains(t, ev, "$ref")
}
