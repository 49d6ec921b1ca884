// Package goroutinetest looks at goroutines for tests: which goroutine
// runs a function, whether one has exited or waits where it should, and
// how much memory their stacks hold.
package goroutinetest
