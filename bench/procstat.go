package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicksPerSecond is Linux's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat: 100 on every architecture Go supports there.
const clockTicksPerSecond = 100

// procCPUSeconds returns the CPU time a process has used, user and system together,
// all its threads included (/proc/<pid>/stat utime + stime). Both servers of a
// comparison are measured this way, as separate processes.
func procCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPUSeconds(string(b))
}

// parseStatCPUSeconds reads utime + stime from the text of a /proc/<pid>/stat.
func parseStatCPUSeconds(s string) (float64, error) {
	// The command name (field 2) is in parentheses and may hold spaces: count the
	// fields from the last ')'.
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("/proc/pid/stat: no command name")
	}
	f := strings.Fields(s[end+1:])
	// After the name: state is field 3, utime field 14, stime field 15.
	const utimeAt, stimeAt = 14 - 3, 15 - 3
	if len(f) <= stimeAt {
		return 0, fmt.Errorf("/proc/pid/stat: %d fields", len(f))
	}
	ut, err1 := strconv.ParseUint(f[utimeAt], 10, 64)
	st, err2 := strconv.ParseUint(f[stimeAt], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/pid/stat: bad utime/stime %q %q", f[utimeAt], f[stimeAt])
	}
	return float64(ut+st) / clockTicksPerSecond, nil
}

// procRSSBytes returns a process's resident set size (VmRSS in /proc/<pid>/status).
func procRSSBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// loadAverage is the first three fields of /proc/loadavg ("" when unreadable).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
