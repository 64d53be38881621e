//go:build !linux

package main

import (
	"errors"
	"time"
)

// gsoBlast needs Linux's UDP_SEGMENT and UDP_GRO.
func gsoBlast(segSize int, dur time.Duration) (mibps, loss float64, err error) {
	return 0, 0, errors.New("the GSO blast needs Linux")
}
