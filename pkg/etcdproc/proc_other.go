//go:build !linux

package etcdproc

import (
	"os"
	"os/exec"
)

// DiesWithMigrate: process groups and Pdeathsig are Linux-only.
func DiesWithMigrate(*exec.Cmd) {}

func terminate(p *os.Process) error { return p.Signal(os.Interrupt) }

func kill(p *os.Process) { _ = p.Kill() }
