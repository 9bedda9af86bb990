package migrate

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdconfig"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
	"github.com/etcd-migrate/etcd-migrate/pkg/lock"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// EtcdArgs is the target etcd's command line: the user's args plus --data-dir when
// they set none.
func EtcdArgs(dataDir string, userArgs []string) []string {
	if etcdconfig.HasFlag(userArgs, "data-dir") {
		return userArgs
	}
	return append(append([]string(nil), userArgs...), "--data-dir="+dataDir)
}

// CheckExecArgs refuses, before anything is migrated, an etcd command line (and
// ETCD_* environment) that would serve another data dir than the one migrated.
func (c *Config) CheckExecArgs(userArgs []string, getenv func(string) string) error {
	served, err := etcdconfig.ParseServed(userArgs, getenv)
	if err != nil {
		return inputErr(err)
	}
	if served.DataDir == "" || sameDir(served.DataDir, c.DataDir) {
		return nil
	}
	return inputErr(fmt.Errorf("etcd would serve data dir %s (%s) but the data dir to migrate is %s (--data-dir/DATA_DIRECTORY): make them the same", served.DataDir, served.Source("data-dir"), c.DataDir))
}

func sameDir(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// execArgs is the exec'd etcd's command line: the user's args, plus --data-dir when
// neither they nor ETCD_DATA_DIR set one, plus --enable-v2 for an etcd2 target.
func (c *Config) execArgs(userArgs []string) []string {
	args := userArgs
	if os.Getenv(etcdconfig.FlagToEnv("data-dir")) == "" {
		args = EtcdArgs(c.DataDir, userArgs) // adds it unless the args set one
	}
	// etcd2 data is served by the v2 API; etcd before 3.2 always serves it and
	// has no flag for it.
	if c.Target.Storage == versionfile.StorageEtcd2 && !etcdversion.For(c.Target.Version).V2WithoutFlag && !etcdconfig.HasFlag(args, "enable-v2") {
		args = append(append([]string(nil), args...), "--enable-v2=true")
	}
	return args
}

// execEnv is the exec'd etcd's environment: this one without the ETCD_<FLAG>
// variables its command line shadows (etcd refuses to start with both) and without
// ETCD_VERSION (etcdconfig.ExecEnv).
func (c *Config) execEnv(args []string, log bool) []string {
	env, dropped := etcdconfig.ExecEnv(args, os.Environ())
	if log {
		for _, d := range dropped {
			c.Logger.Info("left out of etcd's environment", "variable", d.Var, "why", d.Why)
		}
	}
	return env
}

// Exec hands the process over to the target etcd. The data dir lock passes to it, so
// no other migrator can change the data while it serves.
func (c *Config) Exec(lk *lock.Lock, userArgs []string) error {
	bin := steprun.EtcdBinary(c.BinDir, c.Target.Version)
	args := c.execArgs(userArgs)
	env := c.execEnv(args, true)
	if err := lk.KeepAcrossExec(); err != nil {
		c.Logger.Warn("lock will not pass to etcd", "lock", lk.Path(), "err", err)
	}
	c.Logger.Info("exec", "binary", bin, "args", len(args))
	return execEtcd(bin, args, env)
}

// ExecAsIs hands the process over to etcd-<v> of binDir with args and this
// environment unchanged: the image's `etcd --version`, `etcd --help` and any other
// invocation that serves no data dir.
func ExecAsIs(binDir string, v *version.Version, args []string) error {
	bin := steprun.EtcdBinary(binDir, v)
	if _, err := os.Stat(bin); err != nil {
		return inputErr(fmt.Errorf("etcd %s is bundled but %s is missing: %w", v, bin, err))
	}
	return execEtcd(bin, args, os.Environ())
}

// ExecCommand hands the process over to the executable at path with args and this
// environment: the image's `docker run IMAGE etcdctl …` and the like.
func ExecCommand(path string, args []string) error {
	if _, err := os.Stat(path); err != nil {
		return inputErr(fmt.Errorf("%s: %w", path, err))
	}
	return execEtcd(path, args, os.Environ())
}
