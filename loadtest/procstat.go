package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcSample is one reading of a process's memory and CPU from /proc.
type ProcSample struct {
	At     time.Time
	RSS    int64   // resident set, bytes (VmRSS)
	HWM    int64   // peak resident set, bytes (VmHWM)
	CPUSec float64 // user + system CPU seconds since the process started
	// Written is the bytes the process has passed to write(2) and its kin
	// (wchar in /proc/PID/io): for a gateway, what it put on its sockets.
	// 0 when /proc/PID/io cannot be read (another user's process).
	Written int64
}

// ReadProc samples process pid (0 = this process).
func ReadProc(pid int) (ProcSample, error) {
	dir := "/proc/self"
	if pid > 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	s := ProcSample{At: time.Now()}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return s, err
	}
	s.RSS = statusKB(status, "VmRSS:") * 1024
	s.HWM = statusKB(status, "VmHWM:") * 1024
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("%s/stat: unexpected format", dir)
	}
	f := bytes.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return s, fmt.Errorf("%s/stat: too few fields", dir)
	}
	ut, _ := strconv.ParseInt(string(f[11]), 10, 64)
	st, _ := strconv.ParseInt(string(f[12]), 10, 64)
	s.CPUSec = float64(ut+st) / clockTicks
	if io, err := os.ReadFile(dir + "/io"); err == nil {
		s.Written = statusKB(io, "wchar:") // the same "key: number" layout, in bytes
	}
	return s, nil
}

func statusKB(status []byte, key string) int64 {
	i := bytes.Index(status, []byte(key))
	if i < 0 {
		return 0
	}
	line := status[i+len(key):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseInt(string(f[0]), 10, 64)
	return v
}
