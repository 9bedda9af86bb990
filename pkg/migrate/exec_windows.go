//go:build windows

package migrate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// execEtcd on Windows, which has no exec(2): etcd runs as a child with this process's
// stdio and environment, and migrate waits for it, then exits with etcd's exit code.
// The data dir lock stays held by this process (LockFileEx on its open handle) for as
// long as etcd runs, as the exec'd etcd holds it elsewhere. A console Ctrl-C reaches
// etcd directly (same console); migrate, whose main catches os.Interrupt, keeps
// waiting for etcd to stop.
func execEtcd(bin string, args, env []string) error {
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &ee):
		fmt.Fprintf(os.Stderr, "migrate: %s exited with code %d\n", bin, ee.ExitCode())
		os.Exit(ee.ExitCode())
	}
	return fmt.Errorf("wait for %s: %w", bin, err)
}
