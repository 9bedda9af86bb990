package app

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdconfig"
)

// TestResolveFromEtcdArgs: where migrate's own flag and variable are unset, the
// member's name, initial cluster and peer URLs come from the served etcd's settings
// (the args after -- and the ETCD_* variables etcd reads); ETCD_CREDS reaches the
// steps filtered.
func TestResolveFromEtcdArgs(t *testing.T) {
	etcdArgs := []string{"--name=etcd-a", "--initial-cluster=etcd-a=https://a:2380", "--listen-peer-urls", "https://10.0.0.1:2380",
		"--initial-advertise-peer-urls=https://a:2380", "--quota-backend-bytes=1"}
	for _, tc := range []struct {
		name                             string
		args                             []string
		env                              map[string]string
		etcdArgs                         []string
		wantName, wantIC, wantLP, wantAP string
	}{
		{"from the args after --", nil, map[string]string{"ETCD_HOSTNAME": "h"}, etcdArgs,
			"etcd-a", "etcd-a=https://a:2380", "https://10.0.0.1:2380", "https://a:2380"},
		{"migrate's env wins", nil, map[string]string{"ETCD_NAME": "n", "INITIAL_CLUSTER": "n=http://n:1", "LISTEN_PEER_URLS": "http://n:1", "INITIAL_ADVERTISE_PEER_URLS": "http://n:1"}, etcdArgs,
			"n", "n=http://n:1", "http://n:1", "http://n:1"},
		{"migrate's flags win", []string{"--name=f", "--initial-cluster=f=http://f:1", "--listen-peer-urls=http://f:1", "--initial-advertise-peer-urls=http://f:1"}, nil, etcdArgs,
			"f", "f=http://f:1", "http://f:1", "http://f:1"},
		{"etcd's own variables", nil, map[string]string{"ETCD_INITIAL_CLUSTER": "h=http://e:1", "ETCD_LISTEN_PEER_URLS": "http://e:1"}, nil,
			"etcd-host-0", "h=http://e:1", "http://e:1", "http://localhost:2380"},
		{"defaults", nil, nil, []string{"--quota-backend-bytes=1"},
			"etcd-host-0", "etcd-host-0=http://localhost:2380", "http://localhost:2380", "http://localhost:2380"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &options{all: nil}
			fs := newFlagSet(o)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			env := withEnv(tc.env)
			r, err := o.resolve(fs, func(k string) string { return env[k] }, tc.etcdArgs)
			if err != nil {
				t.Fatal(err)
			}
			c := r.cfg
			if c.Name != tc.wantName || c.InitialCluster != tc.wantIC || c.ListenPeerURLs != tc.wantLP || c.InitialAdvertisePeerURLs != tc.wantAP {
				t.Errorf("name %q initial cluster %q listen peer %q advertise peer %q; want %q %q %q %q",
					c.Name, c.InitialCluster, c.ListenPeerURLs, c.InitialAdvertisePeerURLs, tc.wantName, tc.wantIC, tc.wantLP, tc.wantAP)
			}
		})
	}
}

func TestResolveCredsFiltered(t *testing.T) {
	r := mustResolve(t, nil, withEnv(map[string]string{"ETCD_CREDS": "--peer-cert-file=/p.crt --snapshot-count=5 --cert-file=/c.crt --data-dir-x=1"}))
	if got := strings.Join(r.cfg.ExtraArgs, " "); got != "--peer-cert-file=/p.crt --data-dir-x=1" {
		t.Errorf("ExtraArgs = %q", got)
	}
	if len(r.stripped) != 2 || r.stripped[0].Flag != "--snapshot-count=5" || r.stripped[1].Flag != "--cert-file=/c.crt" {
		t.Errorf("stripped = %+v", r.stripped)
	}
	if r.cfg.Creds.Client.CertFile != "/c.crt" {
		t.Errorf("the model lost the client certificate: %+v", r.cfg.Creds.Client)
	}
	for creds, want := range map[string]string{
		"--data-dir=/x":       "ETCD_CREDS (--etcd-server-extra-args) sets --data-dir=/x: the steps run on the data dir migrate checked",
		"--wal-dir=/w":        "--wal-dir=/w in ETCD_CREDS: the WAL dir is the served etcd's setting",
		"--force-new-cluster": "sets --force-new-cluster: it would rewrite the membership",
	} {
		_, err := resolveWith(t, nil, withEnv(map[string]string{"ETCD_CREDS": creds}))
		if err == nil || !strings.Contains(err.Error(), want) || !IsUsageError(err) {
			t.Errorf("ETCD_CREDS=%s: %v, want a usage error containing %q", creds, err, want)
		}
	}
	// The served etcd's WAL dir is the steps' and the backup's.
	if r := mustResolve(t, nil, withEnv(map[string]string{"ETCD_WAL_DIR": "/w"})); r.cfg.WALDir != "/w" {
		t.Errorf("ETCD_WAL_DIR=/w: WALDir %q", r.cfg.WALDir)
	}
}

// newFlagSet registers every flag of o on a new flag set.
func newFlagSet(o *options) *pflag.FlagSet {
	fs := pflag.NewFlagSet("migrate", pflag.ContinueOnError)
	o.addFlags(fs)
	return fs
}

// TestHelpListsEnvAndExitCodes: --help names every environment variable a run reads
// and the exit codes.
func TestHelpListsEnvAndExitCodes(t *testing.T) {
	asked := map[string]bool{}
	env := baseEnv()
	getenv := func(k string) string { asked[k] = true; return env[k] }
	if _, err := Parse([]string{"--", "--name=x"}, getenv); err != nil {
		t.Fatal(err)
	}
	out, err := executeRoot(t, env, "--help")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range asked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if etcdconfig.IsFlagEnv(k) && k != "ETCD_NAME" {
			k = "ETCD_<FLAG>" // read as the served etcd's settings, listed as a family
		}
		if !strings.Contains(out, k) {
			t.Errorf("--help does not mention %s", k)
		}
	}
	for _, want := range []string{"Exit codes:", "  0  ", "  1  a step failed", "  2  bad configuration or input: nothing was touched", "plan", "status"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "completion") {
		t.Errorf("--help lists a completion command:\n%s", out)
	}
	planHelp, err := executeRoot(t, env, "plan", "--help")
	if err != nil {
		t.Fatal(err)
	}
	// plan and status take the run's own command line: every flag of the run.
	statusHelp, err := executeRoot(t, env, "status", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"--data-dir", "--target-version", "--target-storage", "--bundled-versions", "--bin-dir", "--exec", "--etcd-server-extra-args", "--port", "--step-timeout"} {
		if !strings.Contains(planHelp, f) {
			t.Errorf("plan --help lacks %s", f)
		}
		if !strings.Contains(statusHelp, f) {
			t.Errorf("status --help lacks %s", f)
		}
	}
}

func TestStatusRefusals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	out, err := executeRoot(t, map[string]string{"DATA_DIRECTORY": dir}, "status")
	if err == nil || !IsUsageError(err) || !strings.Contains(err.Error(), "data dir "+dir+" does not exist") ||
		out != "data dir:    "+dir+"\ndata:        data dir does not exist\n" {
		t.Errorf("missing data dir: %q, %v", out, err)
	}
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "version.txt"), []byte("3.4/etcd3\n"), 0o644)
	out, err = executeRoot(t, map[string]string{"DATA_DIRECTORY": dir}, "status")
	if err == nil || !IsUsageError(err) || !strings.Contains(err.Error(), `malformed version.txt: `+dir+`/version.txt: invalid version pair "3.4/etcd3"`) ||
		!strings.Contains(out, "version.txt: malformed\n") {
		t.Errorf("malformed version.txt: %q, %v", out, err)
	}
}

// TestResolvePeerTLSFromEtcdArgs: without ETCD_CREDS, the steps get the served etcd's
// peer TLS flags, as they may get its (https) peer URLs; with ETCD_CREDS, only it.
func TestResolvePeerTLSFromEtcdArgs(t *testing.T) {
	etcdArgs := []string{"--listen-peer-urls=https://10.0.0.1:2380", "--peer-cert-file=/p.crt", "--peer-key-file=/p.key", "--cert-file=/c.crt"}
	o := &options{}
	fs := newFlagSet(o)
	env := baseEnv()
	r, err := o.resolve(fs, func(k string) string { return env[k] }, etcdArgs)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.cfg.ExtraArgs, " "); got != "--peer-cert-file=/p.crt --peer-key-file=/p.key" || r.cfg.ListenPeerURLs != "https://10.0.0.1:2380" {
		t.Errorf("ExtraArgs = %q, ListenPeerURLs = %q", got, r.cfg.ListenPeerURLs)
	}
	env["ETCD_CREDS"] = "--peer-auto-tls"
	r, err = o.resolve(fs, func(k string) string { return env[k] }, etcdArgs)
	if err != nil || strings.Join(r.cfg.ExtraArgs, " ") != "--peer-auto-tls" {
		t.Errorf("with ETCD_CREDS: %v, %q", err, r.cfg.ExtraArgs)
	}
}

// TestResolveDataDirFromEtcdArgs: without --data-dir and DATA_DIRECTORY, the data dir
// is the served etcd's (--data-dir after --, else ETCD_DATA_DIR).
func TestResolveDataDirFromEtcdArgs(t *testing.T) {
	for _, tc := range []struct {
		etcdArgs []string
		env      map[string]string
		want     string
	}{
		{[]string{"--data-dir", "/from/args"}, map[string]string{"DATA_DIRECTORY": "<unset>"}, "/from/args"},
		{nil, map[string]string{"DATA_DIRECTORY": "<unset>", "ETCD_DATA_DIR": "/from/etcd/env"}, "/from/etcd/env"},
		{[]string{"--data-dir=/from/args"}, map[string]string{"DATA_DIRECTORY": "/var/etcd/data"}, "/var/etcd/data"},
	} {
		o := &options{}
		fs := newFlagSet(o)
		env := withEnv(tc.env)
		r, err := o.resolve(fs, func(k string) string { return env[k] }, tc.etcdArgs)
		if err != nil || r.cfg.DataDir != tc.want {
			t.Errorf("%q %v: data dir %q, %v; want %q", tc.etcdArgs, tc.env, r.cfg.DataDir, err, tc.want)
		}
	}
}
