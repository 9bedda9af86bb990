//go:build !windows

package migrate

import (
	"fmt"
	"syscall"
)

// execEtcd replaces this process with etcd (same PID), so signals reach etcd directly.
func execEtcd(bin string, args, env []string) error {
	argv := append([]string{bin}, args...)
	if err := syscall.Exec(bin, argv, env); err != nil {
		return fmt.Errorf("exec %s: %w", bin, err)
	}
	return nil
}
