//go:build linux

package etcdproc

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// startScript runs a shell script in place of etcd (Stop does not care what the
// child is) and waits until it printed "started", i.e. its traps are set.
func startScript(t *testing.T, script string, stopTimeout time.Duration) *Process {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "etcd-3.7.3")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := Start(Config{
		Member:      Member{Name: "m", ClientURL: "http://127.0.0.1:1", ListenPeerURLs: "http://127.0.0.1:2", InitialCluster: "m=http://127.0.0.1:2"},
		Binary:      bin,
		Version:     versionfile.MustVersion("3.7.3"),
		DataDir:     t.TempDir(),
		StopTimeout: stopTimeout,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-p.Pid(), syscall.SIGKILL) })
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(p.logs.lines(), "started") {
		if time.Now().After(deadline) {
			t.Fatalf("script did not start: %q", p.logs.lines())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return p
}

func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// TestStopKillsAfterTimeout: an etcd that ignores SIGTERM is SIGKILLed once the
// stop timeout has passed, not earlier and not much later.
func TestStopKillsAfterTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	cases := []struct{ name, script string }{
		// ignores SIGTERM (the ignore survives the exec)
		{"hangs on SIGTERM", "trap '' TERM\necho started\nexec sleep 600\n"},
		// ...and has a child that would hold the output pipes open: the whole
		// process group must go, or Stop would wait on the pipes forever.
		{"hangs with a child holding its output", "trap '' TERM\nsleep 600 &\necho started\nwait\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startScript(t, tc.script, timeout)
			start := time.Now()
			killed, err := p.Stop()
			took := time.Since(start)
			if err != nil || !killed {
				t.Fatalf("Stop = killed %v, err %v; want killed, no error", killed, err)
			}
			if took < timeout || took > timeout+5*time.Second {
				t.Fatalf("Stop took %v, want about the stop timeout %v", took, timeout)
			}
			if !gone(p.Pid()) {
				t.Fatalf("pid %d still exists after Stop", p.Pid())
			}
			t.Logf("killed after %v (stop timeout %v)", took.Round(time.Millisecond), timeout)
		})
	}
}

// TestStopGraceful: an etcd that exits on SIGTERM is not killed and Stop returns
// as soon as it is gone.
func TestStopGraceful(t *testing.T) {
	p := startScript(t, "trap 'echo stopping; exit 0' TERM\necho started\nwhile :; do sleep 0.05; done\n", 30*time.Second)
	start := time.Now()
	killed, err := p.Stop()
	if err != nil || killed {
		t.Fatalf("Stop = killed %v, err %v; want a graceful stop", killed, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("graceful Stop took %v", took)
	}
	if !slices.Contains(p.logs.lines(), "stopping") {
		t.Fatalf("the child did not see SIGTERM: %q", p.logs.lines())
	}
	// A second Stop of a stopped child is a no-op.
	if killed, err := p.Stop(); killed || err != nil {
		t.Fatalf("second Stop = %v, %v", killed, err)
	}
}

func TestLoopbackURLs(t *testing.T) {
	cases := map[string]string{
		"http://localhost:2380":                    "http://localhost:2380",
		"http://127.0.0.1:2380":                    "http://127.0.0.1:2380",
		"https://[::1]:2380":                       "https://[::1]:2380",
		"http://0.0.0.0:2380":                      "http://127.0.0.1:2380",
		"https://10.0.0.7:2380":                    "https://127.0.0.1:2380",
		"http://[::]:2380":                         "http://127.0.0.1:2380",
		"http://etcd-0.example:2380":               "http://127.0.0.1:2380",
		"http://10.0.0.7:2380,http://127.0.0.1:23": "http://127.0.0.1:2380,http://127.0.0.1:23",
		"::not a url":                              "::not a url",
	}
	for in, want := range cases {
		if got := LoopbackURLs(in); got != want {
			t.Errorf("LoopbackURLs(%q) = %q, want %q", in, got, want)
		}
	}
	c := Config{Member: Member{ListenPeerURLs: "http://0.0.0.0:2380"}, Version: versionfile.MustVersion("3.7.3")}
	if a := strings.Join(c.Args(), " "); !strings.Contains(a, "--listen-peer-urls=http://127.0.0.1:2380") {
		t.Errorf("the step's etcd must listen for peers on loopback: %s", a)
	}
}
