package sim

// The syscall package's 386 table predates these two.
const (
	sysRecvmmsg = 337
	sysSendmmsg = 345
)
