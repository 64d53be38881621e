//go:build linux

package main

import "syscall"

// childAttrs makes the kernel stop a server child when this process dies without
// stopping it (a failed test, an interrupt): no turnserver is left running.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
