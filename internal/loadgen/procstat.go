package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of the utime and stime fields of /proc/PID/stat:
// USER_HZ, which Linux fixes at 100 ticks a second in its user ABI on
// every architecture Go runs on (sysconf(_SC_CLK_TCK) returns it).
const userHZ = 100

// readCPU returns the CPU time process pid has used, user plus system
// (utime + stime of /proc/PID/stat), to the tick (10 ms).
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU returns utime + stime of one /proc/PID/stat line. The
// command name (field 2) is in parentheses and may hold spaces and
// parentheses itself, so the fields are counted from the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, errors.New("/proc/PID/stat: no ')' after the command name")
	}
	// After the name: field 3 (state) is rest[0]; utime, stime are fields
	// 14 and 15, rest[11] and rest[12].
	rest := bytes.Fields(b[end+1:])
	if len(rest) < 13 {
		return 0, fmt.Errorf("/proc/PID/stat: %d fields after the command name, want at least 13", len(rest))
	}
	var ticks int64
	for _, f := range rest[11:13] {
		n, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("/proc/PID/stat: utime/stime %q is not a tick count", f)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// readStatusKiB returns one "Key:  N kB" line of /proc/PID/status, in
// KiB: VmRSS (resident now), VmHWM (the resident peak since the process
// started).
func readStatusKiB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKiB(b, key)
}

func parseStatusKiB(b []byte, key string) (int64, error) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(key+":")); ok {
			if f := bytes.Fields(rest); len(f) >= 1 {
				return strconv.ParseInt(string(f[0]), 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/PID/status: no %s", key)
}

// readRSS returns the VmRSS of process pid in KiB.
func readRSS(pid int) (int64, error) { return readStatusKiB(pid, "VmRSS") }

// cpuMeter measures the broker's CPU time over a span of a run.
type cpuMeter struct {
	r     *runner
	start time.Duration
	ok    bool
}

// startCPU reads the broker's CPU time, if a pid was given.
func (r *runner) startCPU() cpuMeter {
	m := cpuMeter{r: r}
	if r.cfg.BrokerPID <= 0 {
		return m
	}
	d, err := readCPU(r.cfg.BrokerPID)
	if err != nil {
		r.logf("broker cpu: %v", err)
		return m
	}
	m.start, m.ok = d, true
	return m
}

// finish records the broker's CPU time since startCPU, and per message
// over msgs messages, in the result; and the broker's peak RSS (VmHWM).
func (m cpuMeter) finish(msgs int64) {
	r := m.r
	if r.cfg.BrokerPID <= 0 {
		return
	}
	if hwm, err := readStatusKiB(r.cfg.BrokerPID, "VmHWM"); err == nil {
		r.res.PeakRSSKiB = hwm
	} else {
		r.logf("broker peak rss: %v", err)
	}
	if !m.ok {
		return
	}
	d, err := readCPU(r.cfg.BrokerPID)
	if err != nil {
		r.logf("broker cpu: %v", err)
		return
	}
	used := d - m.start
	r.res.BrokerCPUSec = round3(used.Seconds())
	if msgs > 0 {
		r.res.BrokerCPUUsPerMsg = round3(float64(used) / float64(time.Microsecond) / float64(msgs))
	}
}
