package app

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
)

// signalGate remembers SIGTERM and SIGINT for the check before the exec: ctx's
// cancellation tells the steps, but arrives asynchronously, and a signal caught
// by this process just before the exec would be lost (the exec'd etcd never sees
// it) and etcd would start although the run was told to stop.
type signalGate struct {
	ch      chan os.Signal
	stopCtx context.CancelFunc
}

type gateKey struct{}

// NotifySignals returns a context that SIGTERM or SIGINT cancel (the steps stop
// their etcd and return) and that carries the gate closed before the exec.
func NotifySignals(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, syscall.SIGTERM, syscall.SIGINT)
	g := &signalGate{ch: make(chan os.Signal, 1), stopCtx: stop}
	signal.Notify(g.ch, syscall.SIGTERM, syscall.SIGINT)
	return context.WithValue(ctx, gateKey{}, g), func() {
		stop()
		signal.Stop(g.ch)
	}
}

// closeSignalGate stops catching SIGTERM and SIGINT and reports one that arrived
// before. From its return on, such a signal takes its default action: before the
// exec it ends this process (no etcd starts), after it the signal is etcd's.
// signal.Stop returns only once every signal caught so far was delivered to the
// gate's channel, so none falls between the check and the exec.
func closeSignalGate(ctx context.Context) (os.Signal, bool) {
	fault.Point(fault.BeforeExec)
	g, _ := ctx.Value(gateKey{}).(*signalGate)
	if g == nil {
		return nil, ctx.Err() != nil
	}
	g.stopCtx()
	signal.Stop(g.ch)
	select {
	case sig := <-g.ch:
		return sig, true
	default:
		return nil, false
	}
}

// interruptedBeforeExec is the error of a run a signal ended after the migration.
func interruptedBeforeExec(sig os.Signal, recorded string) error {
	what := "a signal"
	if sig != nil {
		what = fmt.Sprintf("a signal (%v)", sig)
	}
	return fmt.Errorf("interrupted by %s after the migration; version.txt records %s and etcd was not started: the next start execs it", what, recorded)
}
