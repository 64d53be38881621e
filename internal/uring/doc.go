// Package uring is the little of Linux's io_uring a UDP relay needs, over raw
// system calls (golang.org/x/sys/unix has no wrapper): a ring with its
// submission and completion queues mapped, a provided-buffer ring for multishot
// recvmsg, sendmsg submissions, and io_uring_enter with a bounded wait
// (IORING_ENTER_EXT_ARG: a timeout, and from Linux 6.12 a minimum wait).
//
// Why it exists: a relay that wakes once per datagram or two pays a system call
// and a thread wake-up each time; with IORING_SETUP_DEFER_TASKRUN the kernel
// holds completions back until the waiting thread asks for them, so one
// io_uring_enter can submit the last batch's sends and wait for the next batch
// of arrivals, bounded by a timeout (BENCHMARKS.md, "Issue 18: the game-rate
// relay floor").
//
// Everything is Linux only; on other systems New reports ErrUnsupported.
// A Ring is not safe for concurrent use: with DEFER_TASKRUN (and
// SINGLE_ISSUER, which it needs) only the thread that created it may submit
// and wait, so its user locks that goroutine to its OS thread.
package uring

import "errors"

// ErrUnsupported: io_uring cannot be used here (not Linux, disabled by
// kernel.io_uring_disabled, refused by a seccomp filter, or a feature the caller
// asked for is missing).
var ErrUnsupported = errors.New("uring: io_uring unavailable")
