//go:build race

package middleware_test

// raceEnabled is whether the race detector is on: it changes allocation counts.
const raceEnabled = true
