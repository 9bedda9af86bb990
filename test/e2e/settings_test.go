package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/etcd-migrate/etcd-migrate/internal/etcdtest"
)

// execAndServe runs migrate (with exec) on dataDir to target with etcdArgs after --
// (plus free client and peer URLs) and waits until the exec'd etcd answers as the
// target version. It returns migrate's stderr up to then; the etcd is stopped at
// the end of the test.
func execAndServe(t *testing.T, binDir, dataDir string, env []string, target string, etcdArgs ...string) string {
	t.Helper()
	port, peer := etcdtest.FreePort(t), etcdtest.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	args := append([]string{"--target-version=" + target, "--",
		"--listen-client-urls=" + url, "--advertise-client-urls=" + url,
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", peer)}, etcdArgs...)
	cmd := migrateCmd(t, binDir, dataDir, env, args...)
	_, _, stderr := execServing(t, cmd, url, target)
	return stderr
}

// TestExecWithShadowedEnv: ETCD_NAME in the environment and --name after -- (both
// natural in a manifest) made etcd 3.7.3 refuse to start after a good walk
// ("conflicting environment variable is shadowed by corresponding command-line
// flag"). The exec'd etcd's environment leaves ETCD_NAME out, says so, and etcd serves.
func TestExecWithShadowedEnv(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	// The control: etcd 3.7.3 itself refuses to start with both (before it touches
	// a data dir or a port).
	ctl := exec.Command(filepath.Join(binDir, "etcd-3.7.3"), "--name=etcd-member", "--data-dir="+filepath.Join(t.TempDir(), "control"))
	ctl.Env = append(os.Environ(), "ETCD_NAME=etcd-member")
	if out, err := ctl.CombinedOutput(); err == nil || !strings.Contains(string(out), "conflicting environment variable is shadowed by corresponding command-line flag") {
		t.Fatalf("control: etcd 3.7.3 with ETCD_NAME and --name: %v\n%s", err, out)
	}
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	stderr := execAndServe(t, binDir, dataDir, []string{"ETCD_NAME=etcd-member"}, "3.7.3", "--name=etcd-member")
	if !strings.Contains(stderr, `msg="left out of etcd's environment" variable=ETCD_NAME why="the same flag is given after --"`) {
		t.Fatalf("no log line for the shadowed ETCD_NAME:\n%s", stderr)
	}
	if got := readVersionTxt(t, dataDir); got != "3.7.3/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
}

// TestTargetDeprecationLogged: a flag the target etcd's --help calls deprecated is
// logged, with the target's own notice, before the walk starts.
func TestTargetDeprecationLogged(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	stderr := execAndServe(t, binDir, dataDir, nil, "3.6.16", "--experimental-watch-progress-notify-interval=5s")
	const want = `msg="the target etcd deprecates a setting it is given" setting=--experimental-watch-progress-notify-interval etcd=3.6.16 notice="Duration of periodical watch progress notification. Deprecated in v3.6 and will be decommissioned in v3.7. Use '--watch-progress-notify-interval' instead."`
	i := strings.Index(stderr, want)
	if i < 0 {
		t.Fatalf("no deprecation line %q:\n%s", want, stderr)
	}
	if j := strings.Index(stderr, `msg="step done"`); j >= 0 && j < i {
		t.Fatalf("the deprecation was logged after a step, not before the walk:\n%s", stderr)
	}
}

// TestTargetRefusesFlagBeforeWalk: a flag the target etcd no longer knows (kubeadm-style
// manifests for 3.5/3.6 carry --experimental-initial-corrupt-check; 3.7 removed it)
// used to be found after the walk, when the exec'd etcd refused to start on data
// already moved to 3.7. It is refused before anything is touched, in well under a
// second, with the replacement etcd 3.6's own deprecation notice names.
func TestTargetRefusesFlagBeforeWalk(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	for _, tc := range []struct {
		name, target string
		env, args    []string
		want         string
	}{
		{"removed flag with a replacement", "3.7.3", nil, []string{"--experimental-initial-corrupt-check"},
			`migrate: error: the target etcd 3.7.3 does not accept its command line: flag provided but not defined: -experimental-initial-corrupt-check: ` +
				`replace --experimental-initial-corrupt-check after -- with --feature-gates=InitialCorruptCheck=true ` +
				`(etcd 3.6.16: "Deprecated in v3.6 and will be decommissioned in v3.7. Use '--feature-gates=InitialCorruptCheck=true' instead."); nothing was changed`},
		{"unknown flag", "3.7.3", nil, []string{"--no-such-flag=1"},
			`migrate: error: the target etcd 3.7.3 does not accept its command line: flag provided but not defined: -no-such-flag: remove --no-such-flag after --; nothing was changed`},
		{"newer flag on an older target", "3.5.35", nil, []string{"--feature-gates=InitialCorruptCheck=true"},
			`migrate: error: the target etcd 3.5.35 does not accept its command line: flag provided but not defined: -feature-gates: remove --feature-gates after -- (a flag of etcd 3.7.3, not of etcd 3.5.35); nothing was changed`},
		{"bad value in an ETCD_ variable", "3.7.3", []string{"ETCD_QUOTA_BACKEND_BYTES=lots"}, nil,
			`migrate: error: the target etcd 3.7.3 does not accept its command line: invalid value "lots" for flag -quota-backend-bytes: parse error: fix ETCD_QUOTA_BACKEND_BYTES=lots in the environment; nothing was changed`},
		// etcd 3.4.25 prints a golang/protobuf deprecation WARNING before the flag
		// error: the error names the flag, not the WARNING.
		{"unknown flag, 3.4.25 target", "3.4.25", []string{"BUNDLED_VERSIONS=3.4.13,3.4.25,3.5.35,3.6.16,3.7.3"}, []string{"--no-such-flag=1"},
			`migrate: error: the target etcd 3.4.25 does not accept its command line: flag provided but not defined: -no-such-flag: remove --no-such-flag after --; nothing was changed`},
		{"bad value, 3.4.25 target", "3.4.25", []string{"BUNDLED_VERSIONS=3.4.13,3.4.25,3.5.35,3.6.16,3.7.3"}, []string{"--quota-backend-bytes=lots"},
			`migrate: error: the target etcd 3.4.25 does not accept its command line: invalid value "lots" for flag -quota-backend-bytes: parse error: fix --quota-backend-bytes after --; nothing was changed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := etcdtest.ExtractFixture(t, fixture34)
			before := etcdtest.Checksum(t, dataDir)
			start := time.Now()
			flags := []string{"--target-version=" + tc.target}
			for _, e := range tc.env {
				if b, ok := strings.CutPrefix(e, "BUNDLED_VERSIONS="); ok {
					flags = append(flags, "--bundled-versions="+b) // runMigrate's flag wins over the variable
				}
			}
			r := runMigrate(t, binDir, dataDir, tc.env, append(append(flags, "--"), tc.args...)...)
			took := time.Since(start)
			if line := errorLine(t, r); r.code != 2 || line != tc.want {
				t.Fatalf("exit %d, error line:\n%s\nwant exit 2 and:\n%s", r.code, line, tc.want)
			}
			if took > 5*time.Second {
				t.Fatalf("refused after %v, want seconds", took)
			}
			if etcdtest.Checksum(t, dataDir) != before {
				t.Fatal("data dir changed")
			}
			t.Logf("exit 2 after %v", took.Round(time.Millisecond))
		})
	}
}

// TestCredsStepFlagsStripped: flags in ETCD_CREDS that would change what a step does
// (they come last on its command line) are left out of the steps' etcd, with a log
// line each: with --snapshot-count=100000 a step would wait in vain for its snapshot,
// with --log-outputs elsewhere it would read no log.
func TestCredsStepFlagsStripped(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	creds := "ETCD_CREDS=--snapshot-count=100000 --log-outputs=" + filepath.Join(t.TempDir(), "etcd.log") + " --heartbeat-interval=500 --max-request-bytes=2000000"
	r := runMigrate(t, binDir, dataDir, []string{creds}, "--target-version=3.5.35", "--exec=false", "--step-timeout=30s", "--log-level=debug")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		`msg="ETCD_CREDS flag left out of the steps' etcd" flag="--snapshot-count=100000" why="a step sets its own to save the snapshot it waits for"`,
		`msg="ETCD_CREDS flag left out of the steps' etcd" flag="--log-outputs=`,
		`msg="ETCD_CREDS flag left out of the steps' etcd" flag="--heartbeat-interval=500" why="a step sets its own for a lone member (kept if the data records several members)"`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("no log line %q:\n%s", want, r.stderr)
		}
	}
	// What is not stripped reaches the step's etcd, last on its command line (which
	// it logs) but for the private listener's TLS flags, and the stripped flags do
	// not.
	running := ""
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, `\"msg\":\"Running: \"`) {
			running = l
		}
	}
	if !strings.Contains(running, `\"--max-request-bytes=2000000\",\"--cert-file=`) || !strings.HasSuffix(running, `\"--client-cert-auth=true\"]}"`) {
		t.Errorf("--max-request-bytes is not last on the step's command line: %s", running)
	}
	for _, f := range []string{"--snapshot-count=100000", "--log-outputs", "--heartbeat-interval=500"} {
		if strings.Contains(running, f) {
			t.Errorf("%s reached the step's etcd: %s", f, running)
		}
	}
	if got := readVersionTxt(t, dataDir); got != "3.5.35/etcd3\n" {
		t.Fatalf("version.txt = %q", got)
	}
}

// TestCLIEdges: command line mistakes are usage errors (exit 2) that say what is wrong.
func TestCLIEdges(t *testing.T) {
	binDir := etcdtest.BinDir(t)
	dataDir := etcdtest.ExtractFixture(t, fixture34)
	missing := filepath.Join(t.TempDir(), "no-such-data")
	malformed := etcdtest.CopyDir(t, dataDir)
	if err := os.WriteFile(filepath.Join(malformed, "version.txt"), []byte("3.4/etcd3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args       []string
		dataDir    string
		wantErr    string
		wantStdout string
	}{
		{[]string{"stauts"}, dataDir, `migrate: error: unknown command "stauts" for "migrate" (did you mean "status"?): the commands are plan and status; etcd arguments go after --`, ""},
		{[]string{"completion", "bash"}, dataDir, `migrate: error: unknown command "completion" for "migrate"`, ""},
		{[]string{"plan", "extra"}, dataDir, `migrate: error: migrate plan takes no arguments before --, got ["extra"]`, ""},
		{[]string{"status", "extra"}, dataDir, `migrate: error: migrate status takes no arguments before --, got ["extra"]`, ""},
		{[]string{"plan", "--bin-dir=/x"}, dataDir, `migrate: error: bundled binary /x/etcd-3.7.3 is missing: build it (make etcd-binaries) or fix --bin-dir/BUNDLED_VERSIONS`, "step 3: upgrade-minor 3.6.16/etcd3 -> 3.7.3/etcd3 (run etcd-3.7.3)\n"},
		{[]string{"plan", "--bogus"}, dataDir, `migrate: error: unknown flag: --bogus`, ""},
		{[]string{"status"}, missing, `migrate: error: data dir ` + missing + ` does not exist: check --data-dir/DATA_DIRECTORY`, "data:        data dir does not exist\n"},
		{[]string{"status"}, malformed, `migrate: error: malformed version.txt: ` + malformed + `/version.txt: invalid version pair "3.4/etcd3"`, "version.txt: malformed\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(filepath.Join(binDir, "migrate"), tc.args...)
			cmd.Env = append(os.Environ(), "DATA_DIRECTORY="+tc.dataDir, "TARGET_VERSION=3.7.3", "BUNDLED_VERSIONS="+etcdtest.Bundled)
			var out, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != 2 || !strings.Contains(errb.String(), tc.wantErr) || !strings.Contains(out.String(), tc.wantStdout) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2, %q on stderr", code, out.String(), errb.String(), tc.wantErr)
			}
		})
	}
	help, err := exec.Command(filepath.Join(binDir, "migrate"), "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Exit codes:", "DATA_DIRECTORY", "ETCD_CREDS", "ETCD_<FLAG>"} {
		if !strings.Contains(string(help), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}
