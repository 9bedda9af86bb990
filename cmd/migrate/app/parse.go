package app

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/etcd-migrate/etcd-migrate/pkg/migrate"
)

// Invocation is what a migrate command line and environment resolve to.
type Invocation struct {
	// Config is the run's configuration (data dir, target, bundled versions, member
	// identity and private URLs, ...); its Logger discards.
	Config migrate.Config
	// Exec: exec etcd-<target> after migrating (false with --exec=false).
	Exec bool
	// EtcdArgs are the arguments after "--", given to the exec'd etcd (Exec adds
	// --data-dir when they set none).
	EtcdArgs []string
	// BundledVersions is the raw bundled version list (flag, env or build default).
	BundledVersions string
}

// Parse resolves a migrate command line (args: what follows the binary name, e.g. a
// container's command or args) and environment with the binary's own code: the cobra
// command and its flags, the environment fallbacks, the defaults and the check that
// the etcd args serve the migrated data dir. It runs nothing and touches nothing.
// Only the default command (migrate, then exec) is accepted, not plan or status.
func Parse(args []string, getenv func(string) string) (Invocation, error) {
	var inv Invocation
	called := false
	cmd := newRootCommandWith(getenv, func(_ context.Context, r resolved, etcdArgs []string) error {
		called = true
		inv = Invocation{Config: r.cfg, Exec: r.exec, EtcdArgs: append([]string(nil), etcdArgs...), BundledVersions: r.bundled}
		return nil
	})
	if sub, _, err := cmd.Find(args); err == nil && sub != cmd {
		return inv, &migrate.InputError{Err: fmt.Errorf("%q is the %s command: Parse takes the migrate command line only", args, sub.Name())}
	}
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		return inv, err
	}
	if !called {
		return inv, errors.New("the command line did not reach a migrate run (--help?)")
	}
	return inv, nil
}

// IsUsageError tells whether err is bad configuration or input (exit code 2).
func IsUsageError(err error) bool {
	var ie *migrate.InputError
	return errors.As(err, &ie)
}
