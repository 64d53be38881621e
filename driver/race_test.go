//go:build race

package driver

// raceEnabled: the race detector slows the loop tenfold; heavy tests scale down.
const raceEnabled = true
