package migrate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/etcd-migrate/etcd-migrate/pkg/lock"
	"github.com/etcd-migrate/etcd-migrate/pkg/steps"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
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

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// etcdDataDir is the data dir etcd will serve given its args and environment, "" when
// neither sets one.
func etcdDataDir(userArgs []string, getenv func(string) string) (dir, source string) {
	for i, a := range userArgs {
		for _, f := range []string{"--data-dir", "-data-dir"} {
			if v, ok := strings.CutPrefix(a, f+"="); ok {
				return v, f + " after --"
			}
			if a == f && i+1 < len(userArgs) {
				return userArgs[i+1], f + " after --"
			}
		}
	}
	if v := getenv("ETCD_DATA_DIR"); v != "" {
		return v, "ETCD_DATA_DIR"
	}
	return "", ""
}

// CheckExecArgs refuses, before anything is migrated, an etcd command line that
// would serve another data dir than the one migrated.
func (c *Config) CheckExecArgs(userArgs []string, getenv func(string) string) error {
	dir, source := etcdDataDir(userArgs, getenv)
	if dir == "" || sameDir(dir, c.DataDir) {
		return nil
	}
	return inputErr(fmt.Errorf("etcd would serve data dir %s (%s) but the data dir to migrate is %s (--data-dir/DATA_DIRECTORY): make them the same", dir, source, c.DataDir))
}

func sameDir(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// Exec hands the process over to the target etcd. The data dir lock passes to it, so
// no other migrator can change the data while it serves.
func (c *Config) Exec(lk *lock.Lock, userArgs []string) error {
	bin := steps.EtcdBinary(c.BinDir, c.Target.Version)
	args := userArgs
	if dir, _ := etcdDataDir(userArgs, os.Getenv); dir == "" {
		args = EtcdArgs(c.DataDir, userArgs)
	}
	if c.Target.Storage == versionfile.StorageEtcd2 && c.Target.Major() >= 3 && !hasFlag(args, "enable-v2") {
		args = append(args, "--enable-v2=true") // etcd2 data is served by the v2 API
	}
	if err := lk.KeepAcrossExec(); err != nil {
		c.Logger.Warn("lock will not pass to etcd", "lock", lk.Path(), "err", err)
	}
	c.Logger.Info("exec", "binary", bin, "args", len(args))
	return execEtcd(bin, args)
}
