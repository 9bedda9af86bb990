// Command migrate brings an etcd data directory to the version the image is told to
// run, one minor at a time with the bundled etcd binaries, then execs that etcd.
// The command line lives in package app.
package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/etcd-migrate/etcd-migrate/cmd/migrate/app"
)

func main() {
	// SIGTERM/SIGINT stop the run; one that arrives before the exec ends it
	// without starting etcd (see app.NotifySignals).
	ctx, stop := app.NotifySignals(context.Background())
	defer stop()
	// The image's /usr/local/bin/etcd is this binary: run as etcd, its arguments
	// are etcd's own command line.
	if filepath.Base(os.Args[0]) == app.EtcdName {
		os.Exit(app.ExitCode(app.RunAsEtcd(ctx, os.Args[0], os.Args[1:], os.Getenv)))
	}
	err := app.NewRootCommand(os.Getenv).ExecuteContext(ctx)
	os.Exit(app.ExitCode(err))
}
