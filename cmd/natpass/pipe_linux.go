package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// catPipeBytes is the capacity cat asks for the pipes on its stdin and stdout:
// Linux's default 64 KiB makes the program on the other end and cat take turns
// for every 64 KiB, a system call and a wake-up each; 1 MiB is the most an
// unprivileged process may set by default (/proc/sys/fs/pipe-max-size).
const catPipeBytes = 1 << 20

// growPipe raises the capacity of f when it is a pipe (F_SETPIPE_SZ). Anything
// else (a file, a terminal, a socket, a reader that is no file) and a refusal
// (the user's pipe budget, /proc/sys/fs/pipe-user-pages-soft, is spent) leave it
// as it was: a bigger pipe only saves time.
func growPipe(f any) {
	file, ok := f.(*os.File)
	if !ok {
		return
	}
	// SyscallConn, not Fd: Fd would put the descriptor in blocking mode.
	rc, err := file.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		if unix.Fstat(int(fd), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO {
			_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, catPipeBytes)
		}
	})
}
