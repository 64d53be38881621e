//go:build race

package machinetest

// raceEnabled: the race detector's instrumentation allocates, so allocation counts
// mean nothing under -race (the same build-tag pair as driver/race_test.go).
const raceEnabled = true
