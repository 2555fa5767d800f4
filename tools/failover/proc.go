package failover

// ProcCPU sums the time on CPU (ns, /proc/PID/task/*/schedstat) and the
// voluntary + involuntary context switches of every thread of pid: the
// idle measurement's counters, for other tools that measure the same way.
func ProcCPU(pid int) (cpuNS, switches int64, err error) {
	cpuNS, switches, _, err = procCPU(pid)
	return cpuNS, switches, err
}
