//go:build !linux

package etcdproc

import (
	"os"
	"os/exec"
)

func setProcAttrs(*exec.Cmd) {}

func terminate(p *os.Process) error { return p.Signal(os.Interrupt) }

func kill(p *os.Process) { _ = p.Kill() }
