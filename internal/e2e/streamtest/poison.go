package streamtest

import (
	"flag"

	"github.com/taskbridge-go/taskbridge/internal/fanout"
)

// PoisonReleasedFrames makes the frames transports release spoiled instead
// of recycled (see fanout.PoisonReleased), so that a transport writing a
// frame after releasing it sends garbage, which the tests' checks of what
// clients receive catch. A run with -test.bench recycles them, as the
// benchmarks measure. Call it from TestMain (it parses the flags).
func PoisonReleasedFrames() {
	flag.Parse()
	fanout.PoisonReleased(flag.Lookup("test.bench").Value.String() == "")
}
