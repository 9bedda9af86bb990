// Command migrate brings an etcd data directory to the version the image is told to
// run, one minor at a time with the bundled etcd binaries, then execs that etcd.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/etcd-migrate/etcd-migrate/pkg/migrate"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := newRootCommand(os.Getenv).ExecuteContext(ctx)
	os.Exit(exitCode(err))
}

// exitCode maps errors to DESIGN §1's codes: 2 bad configuration or input (nothing
// touched), 1 a step failed.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "migrate: error: "+err.Error())
	var ie *migrate.InputError
	var ue *usageError
	if errors.As(err, &ie) || errors.As(err, &ue) {
		return 2
	}
	return 1
}
