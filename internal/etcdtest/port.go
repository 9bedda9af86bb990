package etcdtest

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
)

// Ports for tests come from below the kernel's ephemeral range. A port the kernel
// handed out for ":0" is in that range, and between the check and the etcd that
// binds it, any outbound connection (a parallel test's client, an etcd dialing its
// own gateway) may take it as its local port: "address already in use" in a
// rerun, seen once in CI. Below the range only listeners compete, and each port is
// handed out once per test process, starting at an offset spread by PID so that
// parallel test binaries walk different stretches.
var ports struct {
	sync.Mutex
	lo, hi, next int
}

// nextPorts hands out n consecutive ports.
func nextPorts(n int) int {
	ports.Lock()
	defer ports.Unlock()
	if ports.hi == 0 {
		ports.lo, ports.hi = 10000, ephemeralLow()
		if ports.hi-ports.lo < 1000 {
			ports.lo, ports.hi = 1024, 65535 // no room below: anywhere, checked
		}
		ports.next = ports.lo + (os.Getpid()*389)%(ports.hi-ports.lo)
	}
	if ports.next+n > ports.hi {
		ports.next = ports.lo
	}
	p := ports.next
	ports.next += n
	return p
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 if unknown).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var lo, hi int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &lo, &hi); err != nil || lo <= 0 {
		return 32768
	}
	return lo
}

// FreePort returns a loopback TCP port that was free a moment ago and that this
// process has not handed out before.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePortOn(t, "127.0.0.1")
}

// FreePortOn returns a port free on host and on every interface (a member bound
// to 0.0.0.0 must not meet a port someone bound on one address) a moment ago,
// not handed out before by this process.
func FreePortOn(t testing.TB, host string) int {
	t.Helper()
	for i := 0; i < 2000; i++ {
		p := nextPorts(1)
		if free(host, p) && (host == "0.0.0.0" || free("0.0.0.0", p)) {
			return p
		}
	}
	t.Fatalf("no free port on %s", host)
	return 0
}

func free(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// FreePortPair returns a loopback port p with p and p+1 free a moment ago (the
// etcd2 fixture generator listens on p for clients and p+1 for peers).
func FreePortPair(t testing.TB) int {
	t.Helper()
	for i := 0; i < 2000; i++ {
		p := nextPorts(2)
		if free("0.0.0.0", p) && free("0.0.0.0", p+1) {
			return p
		}
	}
	t.Fatal("no two adjacent free loopback ports")
	return 0
}
