// Package goroutinetest tells goroutines apart for tests: which goroutine
// runs a function, and whether a goroutine has exited.
package goroutinetest
