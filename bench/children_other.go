//go:build !linux

package main

import "syscall"

// childAttrs: no parent-death signal outside Linux.
func childAttrs() *syscall.SysProcAttr { return nil }
