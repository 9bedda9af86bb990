package migrate

import (
	"strings"

	"github.com/etcd-migrate/etcd-migrate/pkg/lock"
	"github.com/etcd-migrate/etcd-migrate/pkg/steps"
)

// EtcdArgs is the target etcd's command line: the user's args plus --data-dir when
// they set none.
func EtcdArgs(dataDir string, userArgs []string) []string {
	for _, a := range userArgs {
		if a == "--data-dir" || a == "-data-dir" || strings.HasPrefix(a, "--data-dir=") || strings.HasPrefix(a, "-data-dir=") {
			return userArgs
		}
	}
	return append(append([]string(nil), userArgs...), "--data-dir="+dataDir)
}

// Exec hands the process over to the target etcd. The data dir lock passes to it, so
// no other migrator can change the data while it serves.
func (c *Config) Exec(lk *lock.Lock, userArgs []string) error {
	bin := steps.EtcdBinary(c.BinDir, c.Target.Version)
	args := EtcdArgs(c.DataDir, userArgs)
	if err := lk.KeepAcrossExec(); err != nil {
		c.Logger.Warn("lock will not pass to etcd", "lock", lk.Path(), "err", err)
	}
	c.Logger.Info("exec", "binary", bin, "args", len(args))
	return execEtcd(bin, args)
}
