package taskbridge_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/taskbridge-go/taskbridge/internal/e2e/streamtest"
)

func TestMain(m *testing.M) {
	streamtest.PoisonReleasedFrames()
	goleak.VerifyTestMain(m)
}
