package httpx

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDuplicateMember(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`{}`:                                  "",
		`{"a":1,"b":{"a":2}}`:                 "",
		`[{"a":1},{"a":2}]`:                   "",
		`"{\"a\":1,\"a\":2}"`:                 "",
		`{"a":1,"a":2}`:                       "a",
		`{"a":{"b":1,"c":[1,{"d":1,"d":2}]}}`: "a.c[1].d",
		`{"x":1,"\u0078":2}`:                  "x",
		`{"in":{"k":1,"k":1}}`:                "in.k",
		`[1,[{"z":null,"z":null}]]`:           "[1][0].z",
	} {
		require.Equal(t, want, DuplicateMember([]byte(in)), in)
	}
}
