// Command migrate brings an etcd data directory to the version the image is told to
// run, one minor at a time with the bundled etcd binaries, then execs that etcd.
// The command line lives in package app.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/etcd-migrate/etcd-migrate/cmd/migrate/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := app.NewRootCommand(os.Getenv).ExecuteContext(ctx)
	os.Exit(app.ExitCode(err))
}
