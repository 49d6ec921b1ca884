package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// asMainEnv makes the test binary run as tbload itself, so that -spawn can
// start it as a server.
const asMainEnv = "TBLOAD_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
	}
	goleak.VerifyTestMain(m)
}
