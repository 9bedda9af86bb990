package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/etcd-migrate/etcd-migrate/pkg/migrate"
)

const testBundled = "3.4.13,3.5.35,3.6.16,3.7.3"

// baseEnv is a complete environment: every required setting comes from it.
func baseEnv() map[string]string {
	return map[string]string{
		"DATA_DIRECTORY":   "/var/etcd/data",
		"TARGET_VERSION":   "3.6.16",
		"BUNDLED_VERSIONS": testBundled,
		"HOSTNAME":         "host-0",
	}
}

func withEnv(overrides map[string]string) map[string]string {
	env := baseEnv()
	for k, v := range overrides {
		if v == "<unset>" {
			delete(env, k)
			continue
		}
		env[k] = v
	}
	return env
}

func resolveWith(t *testing.T, args []string, env map[string]string) (resolved, error) {
	t.Helper()
	o := &options{}
	fs := pflag.NewFlagSet("migrate", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return o.resolve(fs, func(k string) string { return env[k] }, nil)
}

func mustResolve(t *testing.T, args []string, env map[string]string) resolved {
	t.Helper()
	r, err := resolveWith(t, args, env)
	if err != nil {
		t.Fatalf("resolve(%q, %v): %v", args, env, err)
	}
	return r
}

func versionsText(r resolved) string {
	var s []string
	for _, v := range r.cfg.Bundled {
		s = append(s, v.String())
	}
	return strings.Join(s, ",")
}

// TestResolvePrecedence checks flag > environment > default for each setting.
func TestResolvePrecedence(t *testing.T) {
	tests := []struct {
		name     string
		flag     string // --flag=value
		flagVal  string
		env      string
		envVal   string
		get      func(resolved) string
		wantFlag string // with flag and env set
		wantEnv  string // with only env set
		wantDef  string // with neither
	}{
		{name: "data dir", flag: "data-dir", flagVal: "/flag/data", env: "DATA_DIRECTORY", envVal: "/env/data",
			get: func(r resolved) string { return r.cfg.DataDir }, wantFlag: "/flag/data", wantEnv: "/env/data", wantDef: "<error>"},
		{name: "target version", flag: "target-version", flagVal: "3.7.3", env: "TARGET_VERSION", envVal: "3.5.35",
			get: func(r resolved) string { return r.cfg.Target.String() }, wantFlag: "3.7.3/etcd3", wantEnv: "3.5.35/etcd3", wantDef: "<error>"},
		{name: "target storage", flag: "target-storage", flagVal: "etcd3", env: "TARGET_STORAGE", envVal: "etcd2",
			get: func(r resolved) string { return r.cfg.Target.String() }, wantFlag: "3.6.16/etcd3", wantEnv: "3.6.16/etcd2", wantDef: "3.6.16/etcd3"},
		{name: "bundled versions", flag: "bundled-versions", flagVal: "3.6.16, 3.5.35", env: "BUNDLED_VERSIONS", envVal: "3.7.3 3.6.16",
			get: func(r resolved) string { return versionsText(r) + "|" + r.bundled }, wantFlag: "3.5.35,3.6.16|3.6.16, 3.5.35", wantEnv: "3.6.16,3.7.3|3.7.3 3.6.16", wantDef: "<error>"},
		{name: "name", flag: "name", flagVal: "flag-name", env: "ETCD_NAME", envVal: "env-name",
			get: func(r resolved) string { return r.cfg.Name }, wantFlag: "flag-name", wantEnv: "env-name", wantDef: "etcd-host-0"},
		{name: "initial cluster", flag: "initial-cluster", flagVal: "a=http://a:2380", env: "INITIAL_CLUSTER", envVal: "b=http://b:2380",
			get: func(r resolved) string { return r.cfg.InitialCluster }, wantFlag: "a=http://a:2380", wantEnv: "b=http://b:2380", wantDef: "etcd-host-0=http://localhost:2380"},
		{name: "listen client urls", flag: "listen-client-urls", flagVal: "http://127.0.0.1:1111", env: "LISTEN_CLIENT_URLS", envVal: "http://127.0.0.1:2222",
			get: func(r resolved) string { return r.cfg.ClientURL }, wantFlag: "http://127.0.0.1:1111", wantEnv: "http://127.0.0.1:2222", wantDef: "http://127.0.0.1:18629"},
		{name: "listen peer urls", flag: "listen-peer-urls", flagVal: "http://10.0.0.1:3380", env: "LISTEN_PEER_URLS", envVal: "http://10.0.0.2:3380",
			get: func(r resolved) string { return r.cfg.ListenPeerURLs }, wantFlag: "http://10.0.0.1:3380", wantEnv: "http://10.0.0.2:3380", wantDef: "http://localhost:2380"},
		{name: "advertise peer urls", flag: "initial-advertise-peer-urls", flagVal: "http://10.0.0.1:3380", env: "INITIAL_ADVERTISE_PEER_URLS", envVal: "http://10.0.0.2:3380",
			get: func(r resolved) string { return r.cfg.InitialAdvertisePeerURLs }, wantFlag: "http://10.0.0.1:3380", wantEnv: "http://10.0.0.2:3380", wantDef: "http://localhost:2380"},
		{name: "extra args", flag: "etcd-server-extra-args", flagVal: " --a=1  --b 2 ", env: "ETCD_CREDS", envVal: "--peer-cert-file=/c\t--peer-key-file=/k",
			get:      func(r resolved) string { return fmt.Sprintf("%d:%q", len(r.cfg.ExtraArgs), r.cfg.ExtraArgs) },
			wantFlag: `3:["--a=1" "--b" "2"]`, wantEnv: `2:["--peer-cert-file=/c" "--peer-key-file=/k"]`, wantDef: `0:[]`},
	}
	run := func(t *testing.T, args []string, env map[string]string, get func(resolved) string, want string) {
		t.Helper()
		r, err := resolveWith(t, args, env)
		if want == "<error>" {
			if err == nil {
				t.Fatalf("resolve(%q) = %q, want an error", args, get(r))
			}
			var ue *migrate.InputError
			if !errors.As(err, &ue) {
				t.Errorf("error %q (%T) is not a *migrate.InputError", err, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("resolve(%q): %v", args, err)
		}
		if got := get(r); got != want {
			t.Errorf("resolve(%q) = %q, want %q", args, got, want)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			flagArgs := []string{"--" + tc.flag + "=" + tc.flagVal}
			t.Run("flag beats env", func(t *testing.T) {
				run(t, flagArgs, withEnv(map[string]string{tc.env: tc.envVal}), tc.get, tc.wantFlag)
			})
			t.Run("flag without env", func(t *testing.T) {
				run(t, flagArgs, withEnv(map[string]string{tc.env: "<unset>"}), tc.get, tc.wantFlag)
			})
			t.Run("env beats default", func(t *testing.T) {
				run(t, nil, withEnv(map[string]string{tc.env: tc.envVal}), tc.get, tc.wantEnv)
			})
			t.Run("default", func(t *testing.T) {
				run(t, nil, withEnv(map[string]string{tc.env: "<unset>"}), tc.get, tc.wantDef)
			})
			t.Run("empty env is unset", func(t *testing.T) {
				run(t, nil, withEnv(map[string]string{tc.env: ""}), tc.get, tc.wantDef)
			})
		})
	}
}

func TestResolveFlagSetToDefaultStillBeatsEnv(t *testing.T) {
	// --target-storage=etcd3 equals the default but was given: TARGET_STORAGE loses.
	r := mustResolve(t, []string{"--target-storage", "etcd3"}, withEnv(map[string]string{"TARGET_STORAGE": "etcd2"}))
	if r.cfg.Target.String() != "3.6.16/etcd3" {
		t.Errorf("Target = %s, want 3.6.16/etcd3", r.cfg.Target)
	}
	// An explicitly empty --data-dir is not replaced by DATA_DIRECTORY.
	_, err := resolveWith(t, []string{"--data-dir="}, baseEnv())
	if err == nil || err.Error() != "no data dir: set --data-dir or DATA_DIRECTORY (or --data-dir after --)" {
		t.Errorf("resolve(--data-dir=) = %v, want the no data dir error", err)
	}
}

func TestResolveNameFallback(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"ETCD_NAME wins", nil, map[string]string{"ETCD_NAME": "member-a", "ETCD_HOSTNAME": "eh", "HOSTNAME": "h"}, "member-a"},
		{"ETCD_HOSTNAME before HOSTNAME", nil, map[string]string{"ETCD_HOSTNAME": "eh", "HOSTNAME": "h"}, "etcd-eh"},
		{"HOSTNAME", nil, map[string]string{"HOSTNAME": "h"}, "etcd-h"},
		{"empty ETCD_HOSTNAME falls through", nil, map[string]string{"ETCD_NAME": "", "ETCD_HOSTNAME": "", "HOSTNAME": "h"}, "etcd-h"},
		{"--name beats all", []string{"--name", "flag-member"}, map[string]string{"ETCD_NAME": "member-a", "ETCD_HOSTNAME": "eh", "HOSTNAME": "h"}, "flag-member"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := withEnv(map[string]string{"HOSTNAME": "<unset>"})
			for k, v := range tc.env {
				env[k] = v
			}
			r := mustResolve(t, tc.args, env)
			if r.cfg.Name != tc.want {
				t.Errorf("Name = %q, want %q", r.cfg.Name, tc.want)
			}
			if want := tc.want + "=http://localhost:2380"; r.cfg.InitialCluster != want {
				t.Errorf("InitialCluster = %q, want %q", r.cfg.InitialCluster, want)
			}
		})
	}
}

func TestResolveNameFallsBackToOSHostname(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skipf("os.Hostname: %v", err)
	}
	r := mustResolve(t, nil, withEnv(map[string]string{"HOSTNAME": "<unset>"}))
	if r.cfg.Name != "etcd-"+host {
		t.Errorf("Name = %q, want %q", r.cfg.Name, "etcd-"+host)
	}
}

func TestResolvePorts(t *testing.T) {
	tests := []struct {
		name                      string
		dataDir                   string
		args                      []string
		client, peer, initCluster string
	}{
		{"default", "/var/etcd/data", nil,
			"http://127.0.0.1:18629", "http://localhost:2380", "etcd-host-0=http://localhost:2380"},
		{"events data dir", "/var/etcd/data-events", nil,
			"http://127.0.0.1:18631", "http://localhost:2381", "etcd-host-0=http://localhost:2381"},
		{"event anywhere in the path", "/mnt/event-store/data", nil,
			"http://127.0.0.1:18631", "http://localhost:2381", "etcd-host-0=http://localhost:2381"},
		{"--port and --peer-port", "/var/etcd/data", []string{"--port=3000", "--peer-port=4000"},
			"http://127.0.0.1:3000", "http://localhost:4000", "etcd-host-0=http://localhost:4000"},
		{"--port and --peer-port beat events defaults", "/var/etcd/data-events", []string{"--port", "3000", "--peer-port", "4000"},
			"http://127.0.0.1:3000", "http://localhost:4000", "etcd-host-0=http://localhost:4000"},
		{"only --port on events", "/var/etcd/data-events", []string{"--port=3000"},
			"http://127.0.0.1:3000", "http://localhost:2381", "etcd-host-0=http://localhost:2381"},
		{"only --peer-port", "/var/etcd/data", []string{"--peer-port=4000"},
			"http://127.0.0.1:18629", "http://localhost:4000", "etcd-host-0=http://localhost:4000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustResolve(t, tc.args, withEnv(map[string]string{"DATA_DIRECTORY": tc.dataDir}))
			if r.cfg.ClientURL != tc.client {
				t.Errorf("ClientURL = %q, want %q", r.cfg.ClientURL, tc.client)
			}
			if r.cfg.ListenPeerURLs != tc.peer || r.cfg.InitialAdvertisePeerURLs != tc.peer {
				t.Errorf("ListenPeerURLs = %q, InitialAdvertisePeerURLs = %q, want %q", r.cfg.ListenPeerURLs, r.cfg.InitialAdvertisePeerURLs, tc.peer)
			}
			if r.cfg.InitialCluster != tc.initCluster {
				t.Errorf("InitialCluster = %q, want %q", r.cfg.InitialCluster, tc.initCluster)
			}
		})
	}
}

func TestResolveMoveBinaries(t *testing.T) {
	tests := []struct {
		val  string
		want bool
	}{
		{"<unset>", true},
		{"true", false},
		{"false", true},
		{"", true},
	}
	for _, tc := range tests {
		r := mustResolve(t, nil, withEnv(map[string]string{"DO_NOT_MOVE_BINARIES": tc.val}))
		if r.cfg.MoveBinaries != tc.want {
			t.Errorf("DO_NOT_MOVE_BINARIES=%q: MoveBinaries = %v, want %v", tc.val, r.cfg.MoveBinaries, tc.want)
		}
	}
}

func TestResolveDefaults(t *testing.T) {
	r := mustResolve(t, nil, baseEnv())
	if r.cfg.BinDir != "/usr/local/bin" {
		t.Errorf("BinDir = %q", r.cfg.BinDir)
	}
	if r.cfg.ReadyTimeout != 5*time.Minute || r.cfg.StopTimeout != 30*time.Second {
		t.Errorf("timeouts = %v/%v, want 5m/30s", r.cfg.ReadyTimeout, r.cfg.StopTimeout)
	}
	if !r.exec || r.logFmt != "text" || r.logLvl != slog.LevelInfo {
		t.Errorf("exec/logFmt/logLvl = %v/%q/%v, want true/text/INFO", r.exec, r.logFmt, r.logLvl)
	}
	if got := versionsText(r); got != testBundled {
		t.Errorf("Bundled = %s, want %s", got, testBundled)
	}

	r = mustResolve(t, []string{"--exec=false", "--log-format=json", "--log-level=debug", "--bin-dir=/opt/bin",
		"--step-timeout=90s", "--stop-timeout=5s"}, baseEnv())
	if r.exec || r.logFmt != "json" || r.logLvl != slog.LevelDebug || r.cfg.BinDir != "/opt/bin" ||
		r.cfg.ReadyTimeout != 90*time.Second || r.cfg.StopTimeout != 5*time.Second {
		t.Errorf("flags not applied: exec=%v logFmt=%q logLvl=%v binDir=%q timeouts=%v/%v",
			r.exec, r.logFmt, r.logLvl, r.cfg.BinDir, r.cfg.ReadyTimeout, r.cfg.StopTimeout)
	}
}

func TestResolveBuildTimeBundledDefault(t *testing.T) {
	old := defaultBundledVersions
	t.Cleanup(func() { defaultBundledVersions = old })

	defaultBundledVersions = "3.6.16,3.5.35"
	r := mustResolve(t, nil, withEnv(map[string]string{"BUNDLED_VERSIONS": "<unset>"}))
	if got := versionsText(r); got != "3.5.35,3.6.16" {
		t.Errorf("Bundled = %s, want the build-time default 3.5.35,3.6.16", got)
	}
	r = mustResolve(t, nil, withEnv(map[string]string{"BUNDLED_VERSIONS": "3.7.3", "TARGET_VERSION": "3.7.3"}))
	if got := versionsText(r); got != "3.7.3" {
		t.Errorf("Bundled = %s, want BUNDLED_VERSIONS 3.7.3 over the build-time default", got)
	}
}

func TestResolveErrors(t *testing.T) {
	old := defaultBundledVersions
	t.Cleanup(func() { defaultBundledVersions = old })
	defaultBundledVersions = ""

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // exact message unless prefixed with "~" (substring)
	}{
		{"missing data dir", nil, map[string]string{"DATA_DIRECTORY": "<unset>"}, "no data dir: set --data-dir or DATA_DIRECTORY (or --data-dir after --)"},
		{"missing target version", nil, map[string]string{"TARGET_VERSION": "<unset>"}, "no target version: set --target-version or TARGET_VERSION, e.g. 3.6.16"},
		{"TARGET_VERSION two segments", nil, map[string]string{"TARGET_VERSION": "3.6"}, `TARGET_VERSION: invalid etcd version "3.6": want major.minor.patch, e.g. 3.5.35`},
		{"TARGET_VERSION with v", nil, map[string]string{"TARGET_VERSION": "v3.6.16"}, `~TARGET_VERSION: invalid etcd version "v3.6.16"`},
		{"--target-version bad", []string{"--target-version=latest"}, nil, `~invalid etcd version "latest"`},
		{"TARGET_STORAGE=etcd4", nil, map[string]string{"TARGET_STORAGE": "etcd4"}, `TARGET_STORAGE: unknown storage "etcd4": use etcd2 or etcd3`},
		{"etcd2-era target with etcd3 storage", nil, map[string]string{"TARGET_VERSION": "2.3.7"}, `target: invalid version pair "2.3.7/etcd3": etcd 2.3.7 has no etcd3 storage (it starts with 3.0.0)`},
		{"no bundled versions", nil, map[string]string{"BUNDLED_VERSIONS": "<unset>"}, "no bundled versions: set BUNDLED_VERSIONS or --bundled-versions, e.g. 3.4.13,3.5.35"},
		{"bad bundled version", nil, map[string]string{"BUNDLED_VERSIONS": "3.6.16,3.6"}, `~bundled versions "3.6.16,3.6": invalid etcd version "3.6"`},
		{"bad --log-format", []string{"--log-format=yaml"}, nil, `--log-format "yaml": use text or json`},
		{"bad --log-level", []string{"--log-level=verbose"}, nil, `--log-level "verbose": use debug, info, warn or error`},
		{"client URL list without a loopback one", nil, map[string]string{"LISTEN_CLIENT_URLS": "http://10.128.0.1:2379,unix://127.0.0.1:2,http://127.0.0.1"},
			`LISTEN_CLIENT_URLS "http://10.128.0.1:2379,unix://127.0.0.1:2,http://127.0.0.1": no loopback http or https URL with a port for the steps' private listener: add one, e.g. http://127.0.0.1:18629`},
		{"STORAGE_MEDIA_TYPE protobuf to etcd2", nil, map[string]string{"STORAGE_MEDIA_TYPE": "application/vnd.kubernetes.protobuf", "TARGET_STORAGE": "etcd2", "TARGET_VERSION": "3.4.13"},
			"STORAGE_MEDIA_TYPE=application/vnd.kubernetes.protobuf with TARGET_STORAGE=etcd2: an etcd2 target holds JSON values only; switch the API server to --storage-media-type=application/json and rewrite every object, then set STORAGE_MEDIA_TYPE=application/json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resolveWith(t, tc.args, withEnv(tc.env))
			if err == nil {
				t.Fatal("resolve succeeded, want error")
			}
			if sub, ok := strings.CutPrefix(tc.want, "~"); ok {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("error %q does not contain %q", err, sub)
				}
			} else if err.Error() != tc.want {
				t.Errorf("error = %q, want %q", err, tc.want)
			}
			var ue *migrate.InputError
			if !errors.As(err, &ue) {
				t.Errorf("error %q (%T) is not a *migrate.InputError", err, err)
			}
			if got := exitCodeQuiet(t, err); got != 2 {
				t.Errorf("exitCode = %d, want 2", got)
			}
		})
	}
}

// exitCodeQuiet runs exitCode with os.Stderr redirected and returns the code; the
// captured output is checked against the error.
func exitCodeQuiet(t *testing.T, err error) int {
	t.Helper()
	code, out := captureExitCode(t, err)
	if err == nil {
		if out != "" {
			t.Errorf("exitCode(nil) printed %q", out)
		}
	} else if want := "migrate: error: " + err.Error() + "\n"; out != want {
		t.Errorf("exitCode printed %q, want %q", out, want)
	}
	return code
}

func captureExitCode(t *testing.T, err error) (int, string) {
	t.Helper()
	f, ferr := os.CreateTemp(t.TempDir(), "stderr")
	if ferr != nil {
		t.Fatal(ferr)
	}
	defer f.Close()
	old := os.Stderr
	os.Stderr = f
	code := exitCode(err)
	os.Stderr = old
	b, rerr := os.ReadFile(f.Name())
	if rerr != nil {
		t.Fatal(rerr)
	}
	return code, string(b)
}

func TestExitCode(t *testing.T) {
	inErr := &migrate.InputError{Err: errors.New("bad version.txt")}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"input error", inErr, 2},
		{"wrapped input error", fmt.Errorf("run: %w", inErr), 2},
		{"usage error", &migrate.InputError{Err: errors.New("no data dir")}, 2},
		{"wrapped usage error", fmt.Errorf("x: %w", &migrate.InputError{Err: errors.New("y")}), 2},
		{"plain error", errors.New("step 1/3 upgrade-minor failed"), 1},
		{"wrapped os error", fmt.Errorf("step: %w", os.ErrNotExist), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCodeQuiet(t, tc.err); got != tc.want {
				t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func executeRoot(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand(func(k string) string { return env[k] })
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestRootCommandUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"foo"}, `unknown command "foo" for "migrate": the commands are plan and status; etcd arguments go after --`},
		{[]string{"foo", "--", "--name=x"}, `unknown command "foo" for "migrate"`},
		{[]string{"stauts"}, `unknown command "stauts" for "migrate" (did you mean "status"?)`},
		{[]string{"plan", "extra"}, `migrate plan takes no arguments before --, got ["extra"]`},
		{[]string{"status", "extra", "--", "--name=x"}, `migrate status takes no arguments before --, got ["extra"]`},
		{[]string{"plan", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"status", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"plan", "--", "--name", "a", "b"}, `etcd args after --: "b" is not a flag`},
		{[]string{"completion", "bash"}, `unknown command "completion" for "migrate"`},
		{[]string{"--", "--config-file=/c.yaml"}, "etcd's config file (--config-file=/c.yaml after --) is not supported"},
		{[]string{"--", "--name", "a", "b"}, `etcd args after --: "b" is not a flag`},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"--port=abc"}, `invalid argument "abc" for "--port" flag`},
	}
	for _, tc := range tests {
		_, err := executeRoot(t, baseEnv(), tc.args...)
		if err == nil {
			t.Errorf("%q: succeeded, want error", tc.args)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q does not contain %q", tc.args, err, tc.want)
		}
		var ue *migrate.InputError
		if !errors.As(err, &ue) {
			t.Errorf("%q: error %q (%T) is not a *migrate.InputError", tc.args, err, err)
		}
	}
}

// fakeBinDir is a bin dir of scripts named etcd-<v> that answer every command line
// with "etcd Version: <v>": what plan's binary checks read.
func fakeBinDir(t *testing.T, versions ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, v := range versions {
		script := "#!/bin/sh\necho 'etcd Version: " + v + "'\n"
		if err := os.WriteFile(filepath.Join(dir, "etcd-"+v), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPlanCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	env := withEnv(map[string]string{"DATA_DIRECTORY": dir})
	bin := "--bin-dir=" + fakeBinDir(t, "3.4.13", "3.5.35", "3.6.16", "3.7.3")

	// plan checks the bin dir as a run does: after the steps, exit 2.
	out, err := executeRoot(t, env, "plan", "--bin-dir=/nonexistent")
	if want := "bundled binary /nonexistent/etcd-3.6.16 is missing: build it (make etcd-binaries) or fix --bin-dir/BUNDLED_VERSIONS"; err == nil || err.Error() != want || ExitCode(err) != 2 {
		t.Errorf("plan with a bin dir without the target: %v, want exit 2 with %q", err, want)
	}
	if want := "current: empty data dir\ntarget:  3.6.16/etcd3\nstep 1: write-version (empty data dir) -> 3.6.16/etcd3\n"; out != want {
		t.Errorf("plan output = %q, want %q", out, want)
	}

	out, err = executeRoot(t, env, "plan", bin)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if want := "current: empty data dir\ntarget:  3.6.16/etcd3\nstep 1: write-version (empty data dir) -> 3.6.16/etcd3\n"; out != want {
		t.Errorf("plan output = %q, want %q", out, want)
	}

	// Flags given to the subcommand beat the environment.
	if err := os.WriteFile(filepath.Join(dir, "version.txt"), []byte("3.4.13/etcd3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = executeRoot(t, env, "plan", bin, "--target-version", "3.7.3")
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	// version.txt without any data: nothing to move, the target is just recorded.
	want := "current: empty data dir (version.txt says 3.4.13/etcd3)\ntarget:  3.7.3/etcd3\n" +
		"step 1: write-version (empty data dir) -> 3.7.3/etcd3\n"
	if out != want {
		t.Errorf("plan output = %q, want %q", out, want)
	}

	if err := os.WriteFile(filepath.Join(dir, "version.txt"), []byte("3.6.16/etcd3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = executeRoot(t, env, "plan", bin)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if want := "current: empty data dir (version.txt says 3.6.16/etcd3)\ntarget:  3.6.16/etcd3\nnothing to do\n"; out != want {
		t.Errorf("plan output = %q, want %q", out, want)
	}

	// A target that is not bundled is an input error (exit code 2).
	_, err = executeRoot(t, env, "plan", bin, "--target-version=3.8.0")
	if err == nil || ExitCode(err) != 2 || !strings.Contains(err.Error(), "target version 3.8.0 is not bundled, nor any etcd 3.8.x") {
		t.Errorf("plan to 3.8.0 = %v (%T), want an exit-2 error saying it is not bundled", err, err)
	}
	// Another patch of a bundled minor plans to that minor's bundled release.
	out, err = executeRoot(t, env, "plan", bin, "--target-version=3.6.2")
	if err != nil || !strings.Contains(out, "target:  3.6.16/etcd3\n") {
		t.Errorf("plan to 3.6.2 = %q, %v; want target 3.6.16/etcd3", out, err)
	}
	// plan takes the run's command line: every flag, the data dir after --.
	noDir := withEnv(map[string]string{"DATA_DIRECTORY": "<unset>"})
	out, err = executeRoot(t, noDir, "plan", bin, "--target-version", "3.7.3", "--name=x", "--port=1", "--step-timeout=1m",
		"--exec=false", "--", "--data-dir="+dir, "--name=n")
	if want := "current: empty data dir (version.txt says 3.6.16/etcd3)\ntarget:  3.7.3/etcd3\nstep 1: write-version (empty data dir) -> 3.7.3/etcd3\n"; err != nil || out != want {
		t.Errorf("plan with the data dir after --: %q, %v; want %q", out, err, want)
	}
	// ... or in ETCD_DATA_DIR; DATA_DIRECTORY naming another dir is refused as a run refuses it.
	out, err = executeRoot(t, withEnv(map[string]string{"DATA_DIRECTORY": "<unset>", "ETCD_DATA_DIR": dir}), "plan", bin)
	if err != nil || !strings.HasPrefix(out, "current: empty data dir (version.txt says 3.6.16/etcd3)\n") {
		t.Errorf("plan with ETCD_DATA_DIR: %q, %v", out, err)
	}
	_, err = executeRoot(t, env, "plan", bin, "--", "--data-dir=/elsewhere")
	if want := "etcd would serve data dir /elsewhere (--data-dir after --) but the data dir to migrate is " + dir + " (--data-dir/DATA_DIRECTORY): make them the same"; err == nil || err.Error() != want {
		t.Errorf("plan with another data dir after --: %v, want %q", err, want)
	}
	// plan changes nothing.
	if b, _ := os.ReadFile(filepath.Join(dir, "version.txt")); string(b) != "3.6.16/etcd3\n" {
		t.Errorf("plan changed version.txt to %q", b)
	}
}

func TestStatusCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := executeRoot(t, map[string]string{"DATA_DIRECTORY": dir}, "status")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if want := "data dir:    " + dir + "\nversion.txt: missing\ndata:        empty data dir\n"; out != want {
		t.Errorf("status output = %q, want %q", out, want)
	}

	_, err = executeRoot(t, map[string]string{}, "status")
	var ue *migrate.InputError
	if err == nil || !errors.As(err, &ue) || err.Error() != "no data dir: set --data-dir or DATA_DIRECTORY (or --data-dir after --)" {
		t.Errorf("status without data dir = %v (%T), want the no data dir usage error", err, err)
	}

	// status resolves the data dir as a run does, and takes a run's flags; a
	// target is not needed, and not used.
	want := "data dir:    " + dir + "\nversion.txt: missing\ndata:        empty data dir\n"
	for _, tc := range []struct {
		env  map[string]string
		args []string
	}{
		{map[string]string{"ETCD_DATA_DIR": dir}, []string{"status"}},
		{nil, []string{"status", "--bin-dir=/x", "--target-version=9.9.9", "--name=n", "--", "--data-dir=" + dir, "--name=n"}},
		{map[string]string{"TARGET_VERSION": "3.7.3", "BUNDLED_VERSIONS": "3.4.13"}, []string{"status", "--data-dir=" + dir}},
	} {
		out, err := executeRoot(t, tc.env, tc.args...)
		if err != nil || out != want {
			t.Errorf("%v %q: %q, %v; want %q", tc.env, tc.args, out, err, want)
		}
	}

	// A data dir that is a file is not a directory (not a malformed version.txt).
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = executeRoot(t, map[string]string{"DATA_DIRECTORY": file}, "status")
	if wantErr := "data dir " + file + " is not a directory: point --data-dir (DATA_DIRECTORY) at the etcd data directory"; err == nil || err.Error() != wantErr || ExitCode(err) != 2 ||
		out != "data dir:    "+file+"\ndata:        not a directory\n" {
		t.Errorf("status of a file: %q, %v", out, err)
	}
}

// TestResolveClientURLList: of a LISTEN_CLIENT_URLS list, the steps' private
// listener takes the first loopback http or https URL with a port; the rest are
// kept for the log line that says they are not used.
func TestResolveClientURLList(t *testing.T) {
	for _, tc := range []struct {
		list, used string
		unused     []string
	}{
		{"http://127.0.0.1:2379,http://10.128.0.1:2379", "http://127.0.0.1:2379", []string{"http://10.128.0.1:2379"}},
		{"http://10.128.0.1:2379, https://localhost:4001 ,http://127.0.0.2:2379", "https://localhost:4001", []string{"http://10.128.0.1:2379", "http://127.0.0.2:2379"}},
		{"unix://127.0.0.1:1,http://127.0.0.1,http://[::1]:2379", "http://[::1]:2379", []string{"unix://127.0.0.1:1", "http://127.0.0.1"}},
	} {
		r := mustResolve(t, nil, withEnv(map[string]string{"LISTEN_CLIENT_URLS": tc.list}))
		if r.cfg.ClientURL != tc.used || fmt.Sprint(r.unusedClientURLs) != fmt.Sprint(tc.unused) {
			t.Errorf("%s: used %q, not used %q; want %q, %q", tc.list, r.cfg.ClientURL, r.unusedClientURLs, tc.used, tc.unused)
		}
	}
	// One URL is taken as given: preflight checks it (loopback, port free).
	if r := mustResolve(t, nil, withEnv(map[string]string{"LISTEN_CLIENT_URLS": "http://0.0.0.0:1"})); r.cfg.ClientURL != "http://0.0.0.0:1" || r.unusedClientURLs != nil {
		t.Errorf("one URL: %q, %q", r.cfg.ClientURL, r.unusedClientURLs)
	}
}

// TestResolveKubernetesVariables: ETCD_IMAGE is accepted whatever it says;
// STORAGE_MEDIA_TYPE is refused only where it matters (an etcd2 target).
func TestResolveKubernetesVariables(t *testing.T) {
	for _, env := range []map[string]string{
		{"ETCD_IMAGE": "3.0.17", "STORAGE_MEDIA_TYPE": "application/json", "TARGET_STORAGE": "etcd2", "TARGET_VERSION": "3.4.13"},
		{"STORAGE_MEDIA_TYPE": "application/vnd.kubernetes.protobuf"},
		{"STORAGE_MEDIA_TYPE": "", "TARGET_STORAGE": "etcd2", "TARGET_VERSION": "3.4.13"},
	} {
		r := mustResolve(t, nil, withEnv(env))
		if r.etcdImage != env["ETCD_IMAGE"] || r.mediaType != env["STORAGE_MEDIA_TYPE"] {
			t.Errorf("%v: etcdImage %q, mediaType %q", env, r.etcdImage, r.mediaType)
		}
	}
}
