package sim

// The syscall package's amd64 table predates these two.
const (
	sysRecvmmsg = 299
	sysSendmmsg = 307
)
