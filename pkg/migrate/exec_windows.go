//go:build windows

package migrate

import (
	"fmt"
	"os"
	"os/exec"
)

// execEtcd has no exec(2) on Windows: run etcd as a child, pass through its exit.
func execEtcd(bin string, args []string) error {
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("run %s: %w", bin, err)
	}
	os.Exit(0)
	return nil
}
