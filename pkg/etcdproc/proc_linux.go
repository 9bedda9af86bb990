package etcdproc

import (
	"os"
	"os/exec"
	"syscall"
)

// DiesWithMigrate sets up every child migrate starts (etcd, etcdctl, etcdutl).
// Own process group: a Ctrl-C on migrate's terminal reaches migrate only, which
// then stops the child gracefully. Pdeathsig: the child never outlives migrate, so
// a rerun after a kill never races a restore still writing into the data dir.
func DiesWithMigrate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

// kill SIGKILLs the child's process group (Setpgid made the child its leader), then
// the child itself in case the group is gone.
func kill(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
}
