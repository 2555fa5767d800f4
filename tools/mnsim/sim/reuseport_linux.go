//go:build linux && !mips && !mipsle && !mips64 && !mips64le

package sim

const soReusePort = 0xf // SO_REUSEPORT; missing from the syscall package on some architectures
