//go:build !race

package rawwrite

// raceEnabled reports a build with the race detector, under which sync.Pool
// drops some of what it is given: allocation counts are higher.
const raceEnabled = false
