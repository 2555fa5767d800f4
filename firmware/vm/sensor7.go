package vm

// The mobile router of the reference config (rootfs/etc/hagent.toml):
// sensor-7 may claim networks inside 203.0.113.0/28. The demo and the VM
// test register two of them explicitly and reach a host in each.
const (
	Sensor7Home  = "192.0.2.11"
	Sensor7NAI   = "sensor-7@example.net"
	Sensor7SPI   = "257"
	Sensor7Key   = "example-secret-sensor-7"
	Sensor7CoA   = "198.51.100.20"
	Sensor7NetA  = "203.0.113.0/29"
	Sensor7NetB  = "203.0.113.8/29"
	Sensor7HostA = "203.0.113.2" // one host address in each network
	Sensor7HostB = "203.0.113.9"
)
