package ws

import (
	"github.com/taskbridge-go/taskbridge"
	"github.com/taskbridge-go/taskbridge/internal/bridge"
)

// svcHooks reach the service's logger, clock and fan-out (see
// internal/bridge).
var svcHooks = bridge.For[taskbridge.Service, taskbridge.AuthContext]()
