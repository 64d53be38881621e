//go:build !linux

package main

import (
	"errors"
	"time"
)

// runLoad needs Linux (epoll, and 127.0.0.0/8 routed to lo).
func runLoad(n int, idle, oneTimeout time.Duration, maxPeers int) error {
	return errors.New("the load generator needs Linux")
}

// runLoadOne needs Linux too.
func runLoadOne(n int, timeout time.Duration, maxPeers int) error {
	return errors.New("the load generator needs Linux")
}
