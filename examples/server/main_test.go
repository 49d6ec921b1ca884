package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// runMainEnv makes the test binary run the server's main instead of the
// tests, so that TestBinary can start the real command (flags, signals,
// exit codes) without building it separately.
const runMainEnv = "TASKBRIDGE_EXAMPLE_SERVER_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
