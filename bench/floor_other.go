//go:build !linux

package main

import (
	"errors"
	"time"
)

// floorConfig is what -relay-floor measures (floor_run_linux.go).
type floorConfig struct {
	sessions, size int
	dur            time.Duration
	rounds         int
	holds          []time.Duration
	batches        []int
	minWait        bool
	natpass        bool
	stamp          bool
}

// runFloor: the floor relays are Linux's (recvmmsg, io_uring).
func runFloor(floorConfig) error { return errors.New("-relay-floor needs Linux") }
