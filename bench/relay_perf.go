package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// perfEnv names a directory: when set, every measured relay window runs
// `perf record -g` on the server child for the window (natpass and coturn
// alike), into <dir>/<n>-<server>.data, n counting the windows of this run. It
// is how the per-datagram breakdowns in BENCHMARKS.md were taken; perf must be
// installed (Debian's linux-perf), else the window runs unprofiled with a message.
// perfStatEnv does the same with `perf stat` counting the server's system calls
// and context switches (the wake-ups), into <dir>/<n>-<server>.txt.
const (
	perfEnv     = "NATPASS_BENCH_SERVER_PERF"
	perfStatEnv = "NATPASS_BENCH_SERVER_PERFSTAT"
)

// perfStatEvents are the events perfStatEnv counts.
const perfStatEvents = "context-switches,cpu-migrations,syscalls:sys_enter_recvmmsg,syscalls:sys_enter_sendmmsg," +
	"syscalls:sys_enter_sendmsg,syscalls:sys_enter_sendto,syscalls:sys_enter_recvmsg,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_wait," +
	"syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_poll,syscalls:sys_enter_ppoll"

var perfWindows atomic.Int64

// startServerPerf starts perf on srv when perfEnv asks for it and returns what
// stops it (idempotent); a no-op otherwise.
func startServerPerf(srv *childServer) func() {
	var cmd *exec.Cmd
	if dir := os.Getenv(perfEnv); dir != "" {
		out := filepath.Join(dir, fmt.Sprintf("%d-%s.data", perfWindows.Add(1), srv.name))
		cmd = exec.Command("perf", "record", "-g", "-F", "2000", "-q", "-o", out, "-p", strconv.Itoa(srv.pid()))
	} else if dir := os.Getenv(perfStatEnv); dir != "" {
		out := filepath.Join(dir, fmt.Sprintf("%d-%s.txt", perfWindows.Add(1), srv.name))
		cmd = exec.Command("perf", "stat", "-e", perfStatEvents, "-o", out, "-p", strconv.Itoa(srv.pid()))
	} else {
		return func() {}
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: perf not started:", err)
		return func() {}
	}
	time.Sleep(200 * time.Millisecond) // perf attaches before the window starts
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGINT)
			_ = cmd.Wait()
		})
	}
}
