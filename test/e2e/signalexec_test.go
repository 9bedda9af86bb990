package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// TestSignalAfterLastStep: a SIGTERM (or SIGINT) that arrives after the last step,
// before the exec, ends the run without exec: exit 1 with one line saying so,
// version.txt at the target and agreeing with the data, no etcd started, the lock
// free (the rerun execs). The signal is timed by the JSON log line "migration
// done" while migrate pauses just before its check (ETCD_MIGRATE_FAULT_PAUSE at
// migrate.before-exec); the control run with the same pause and no signal execs
// etcd, so the pause is not what stops it.
func TestSignalAfterLastStep(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	pristine := etcdtest.ExtractFixture(t, fixture34)
	pause := []string{fault.PauseEnv + "=" + fault.BeforeExec + "@3s"}

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dataDir := etcdtest.CopyDir(t, pristine)
			cmd, url, stderr, exited := startExecRun(t, binDir, dataDir, pause)
			waitLog(t, stderr, exited, `"msg":"migration done"`)
			sent := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			var err error
			select {
			case err = <-exited:
			case <-time.After(30 * time.Second):
				t.Fatalf("migrate still runs 30s after %v:\n%s", sig, stderr.String())
			}
			took := time.Since(sent)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("after %v: %v, want exit 1:\n%s", sig, err, stderr.String())
			}
			r := result{code: 1, stderr: stderr.String()}
			want := fmt.Sprintf("interrupted by a signal (%v) after the migration; version.txt records 3.5.35/etcd3 and etcd was not started: the next start execs it", sig)
			if line := errorLine(t, r); !strings.Contains(line, want) {
				t.Fatalf("error line %s\nwant %q", line, want)
			}
			if strings.Contains(r.stderr, `"msg":"exec"`) {
				t.Fatalf("exec logged:\n%s", r.stderr)
			}
			if _, err := etcdproc.GetVersions(context.Background(), url); err == nil {
				t.Fatalf("something serves %s", url)
			}
			if got := readVersionTxt(t, dataDir); got != "3.5.35/etcd3\n" {
				t.Fatalf("version.txt %q", got)
			}
			st, err := datadir.Detect(dataDir)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.CheckAgainst(versionfile.MustPair("3.5.35/etcd3")); err != nil {
				t.Fatalf("version.txt and the data disagree: %v", err)
			}
			t.Logf("%v during the pause before exec: exit 1 after %v; %s", sig, took.Round(time.Millisecond), st)

			// The lock is free; the next start (nothing to migrate) execs etcd.
			cmd, url, stderr, exited = startExecRun(t, binDir, dataDir, nil)
			waitServing(t, url, "3.5.35", stderr, exited)
		})
	}

	t.Run("control: the same pause without a signal execs", func(t *testing.T) {
		dataDir := etcdtest.CopyDir(t, pristine)
		_, url, stderr, exited := startExecRun(t, binDir, dataDir, pause)
		waitLog(t, stderr, exited, "fault: pausing at "+fault.BeforeExec)
		waitServing(t, url, "3.5.35", stderr, exited)
	})
}

// startExecRun starts migrate walking dataDir to 3.5.35 and then exec'ing etcd
// on a free client URL, with JSON logs. The process is stopped at cleanup.
func startExecRun(t *testing.T, binDir, dataDir string, env []string) (*exec.Cmd, string, *etcdtest.SyncBuffer, <-chan error) {
	t.Helper()
	port, peer := etcdtest.FreePort(t), etcdtest.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := migrateCmd(t, binDir, dataDir, env, "--target-version=3.5.35", "--log-format=json", "--",
		"--name=etcd-member", "--listen-client-urls="+url, "--advertise-client-urls="+url,
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", peer))
	stderr := &etcdtest.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	exited, done := make(chan error, 1), make(chan struct{})
	go func() {
		exited <- cmd.Wait()
		close(done) // for the cleanup: the test may have taken the exit from exited
	}()
	t.Cleanup(func() {
		select {
		case <-done:
			return
		default:
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return cmd, url, stderr, exited
}

func waitLog(t *testing.T, stderr *etcdtest.SyncBuffer, exited <-chan error, s string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(stderr.String(), s) {
		select {
		case err := <-exited:
			t.Fatalf("migrate exited (%v) before logging %s:\n%s", err, s, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in the log:\n%s", s, stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
}

func waitServing(t *testing.T, url, version string, stderr *etcdtest.SyncBuffer, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		v, err := etcdproc.GetVersions(context.Background(), url)
		if err == nil && v.Server == version {
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("migrate exited (%v) instead of becoming etcd:\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing served %s as etcd %s (%v):\n%s", url, version, err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
