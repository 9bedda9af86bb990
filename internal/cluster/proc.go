package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// etcdProc is one etcd the harness started.
type etcdProc struct {
	cmd  *exec.Cmd
	log  *etcdtest.SyncBuffer
	done chan struct{}
	err  error // set before done is closed
}

// startEtcd runs binary with args, its output kept in memory.
func startEtcd(binary string, args []string) (*etcdProc, error) {
	p := &etcdProc{log: &etcdtest.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.Env = cleanEnv()
	// Own process group, and never outliving the test binary.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// cleanEnv is the test's environment without ETCD_* variables, which etcd would
// read as flags.
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "ETCD_") {
			env = append(env, e)
		}
	}
	return env
}

func (p *etcdProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits; after timeout it SIGKILLs and reports true.
func (p *etcdProc) stop(timeout time.Duration) (killed bool) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return false
	case <-time.After(timeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return true
	}
}
