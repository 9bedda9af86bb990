// Command migrate brings an etcd data directory to the version the image is told to
// run, one minor at a time with the bundled etcd binaries, then execs that etcd.
// The command line lives in package app.
package main

import (
	"context"
	"os"

	"github.com/etcd-migrate/etcd-migrate/cmd/migrate/app"
)

func main() {
	// SIGTERM/SIGINT stop the run; one that arrives before the exec ends it
	// without starting etcd (see app.NotifySignals).
	ctx, stop := app.NotifySignals(context.Background())
	defer stop()
	// Run as etcd (the image's /usr/local/bin/etcd is a link to this binary) or as
	// the tool the first argument names; see app.Main.
	err := app.Main(ctx, os.Args, os.Getenv)
	os.Exit(app.ExitCode(err))
}
