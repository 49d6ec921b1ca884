package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
)

// asMainEnv makes the test binary run as tbload itself, so that -spawn can
// start it as a server.
const asMainEnv = "TBLOAD_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
	}
	streamtest.PoisonReleasedFrames()
	goleak.VerifyTestMain(m)
}
