package etcdconfig

import (
	"reflect"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []Arg
		err  string
	}{
		{[]string{"--name=a", "-data-dir", "/d", "--peer-client-cert-auth", "--x", "v", "--y", "--z=1"}, []Arg{
			{"name", "a", true, []string{"--name=a"}},
			{"data-dir", "/d", true, []string{"-data-dir", "/d"}},
			{"peer-client-cert-auth", "", false, []string{"--peer-client-cert-auth"}},
			{"x", "v", true, []string{"--x", "v"}},
			{"y", "", false, []string{"--y"}},
			{"z", "1", true, []string{"--z=1"}},
		}, ""},
		// A known flag that takes a value takes the next token, as etcd's flag parser does.
		{[]string{"--client-crl-file", "--x=1"}, []Arg{{"client-crl-file", "--x=1", true, []string{"--client-crl-file", "--x=1"}}}, ""},
		{[]string{"--data-dir="}, []Arg{{"data-dir", "", true, []string{"--data-dir="}}}, ""},
		{[]string{"--name"}, nil, "flag needs an argument: --name"},
		{[]string{"--name=a", "extra"}, nil, `"extra" is not a flag`},
		{[]string{"--peer-auto-tls", "true"}, nil, `"true" is not a flag`},
		{[]string{"--", "--name=a"}, nil, `"--" is not a flag`},
		{[]string{"---name=a"}, nil, "bad flag syntax"},
	} {
		got, err := Split(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Split(%q) = %v, want error %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Split(%q) = %+v, %v\nwant %+v", tc.args, got, err, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	m, err := Parse([]string{"--name=a", "--peer-cert-file", "/p.crt", "--peer-client-cert-auth", "--snapshot-count=5", "--unknown", "v", "--name=b"},
		env(map[string]string{"ETCD_NAME": "env", "ETCD_DATA_DIR": "/env/data", "ETCD_PEER_KEY_FILE": "/p.key", "ETCD_CREDS": "--x"}), "after --")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "b" || m.DataDir != "/env/data" || m.Peer.CertFile != "/p.crt" || m.Peer.KeyFile != "/p.key" || !m.Peer.ClientCertAuth || m.SnapshotCount != 5 {
		t.Errorf("Parse = %+v", m)
	}
	if m.Source("name") != "--name after --" || m.Source("data-dir") != "ETCD_DATA_DIR" || m.Source("wal-dir") != "" {
		t.Errorf("sources: name %q, data-dir %q, wal-dir %q", m.Source("name"), m.Source("data-dir"), m.Source("wal-dir"))
	}
	if got := strings.Join(m.Tokens(), " "); got != "--name=a --peer-cert-file /p.crt --peer-client-cert-auth --snapshot-count=5 --unknown v --name=b" {
		t.Errorf("Tokens = %q", got)
	}
	for _, bad := range [][]string{{"--snapshot-count=x"}, {"--peer-client-cert-auth=maybe"}, {"--heartbeat-interval=-1"}} {
		if _, err := Parse(bad, nil, "after --"); err == nil || !strings.Contains(err.Error(), "etcd args after --: "+bad[0]) {
			t.Errorf("Parse(%q) = %v, want a value error naming the flag", bad, err)
		}
	}
	// Images set ETCD_VERSION (etcd itself ignores it, with a warning).
	if _, err := Parse(nil, env(map[string]string{"ETCD_VERSION": "3.4.13", "ETCD_DEBUG": "x"}), "after --"); err != nil {
		t.Errorf("ETCD_VERSION/ETCD_DEBUG: %v", err)
	}
	if _, err := Parse(nil, env(map[string]string{"ETCD_SNAPSHOT_COUNT": "many"}), "after --"); err == nil || !strings.Contains(err.Error(), "ETCD_SNAPSHOT_COUNT=many") {
		t.Errorf("bad ETCD_SNAPSHOT_COUNT: %v", err)
	}
}

func TestParseServedRefusals(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--config-file=/etc/etcd.yaml"}, nil, "etcd's config file (--config-file=/etc/etcd.yaml after --) is not supported"},
		{nil, map[string]string{"ETCD_CONFIG_FILE": "/c.yaml"}, "etcd's config file (ETCD_CONFIG_FILE=/c.yaml) is not supported"},
	} {
		_, err := ParseServed(tc.args, env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseServed(%q, %v) = %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
	// The served etcd's WAL dir is what the steps and the backup use.
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{{[]string{"--wal-dir=/w"}, nil}, {[]string{"-wal-dir", "/w"}, nil}, {nil, map[string]string{"ETCD_WAL_DIR": "/w"}}} {
		if m, err := ParseServed(tc.args, env(tc.env)); err != nil || m.WALDir != "/w" {
			t.Errorf("ParseServed(%q, %v): WAL dir %q, %v; want /w", tc.args, tc.env, m.WALDir, err)
		}
	}
	if _, err := ParseServed([]string{"--name=a", "--wal-dir="}, nil); err != nil {
		t.Errorf("an empty --wal-dir is etcd's default (no separate WAL dir): %v", err)
	}
}

func TestExecEnv(t *testing.T) {
	environ := []string{"PATH=/bin", "ETCD_NAME=a", "ETCD_DATA_DIR=/d", "ETCD_SNAPSHOT_COUNT=10", "ETCD_CREDS=--x", "ETCD_LISTEN_PEER_URLS=http://x:1", "ETCD_VERSION=3.4.13"}
	got, dropped := ExecEnv([]string{"--name=a", "-listen-peer-urls", "http://y:2", "--data-dir-x=1"}, environ)
	if want := []string{"PATH=/bin", "ETCD_DATA_DIR=/d", "ETCD_SNAPSHOT_COUNT=10", "ETCD_CREDS=--x"}; !reflect.DeepEqual(got, want) {
		t.Errorf("env = %q, want %q", got, want)
	}
	var vars []string
	for _, d := range dropped {
		vars = append(vars, d.Var)
	}
	if want := []string{"ETCD_NAME", "ETCD_LISTEN_PEER_URLS", "ETCD_VERSION"}; !reflect.DeepEqual(vars, want) {
		t.Errorf("dropped = %q, want %q", vars, want)
	}
}

func TestParseCreds(t *testing.T) {
	c, err := ParseCreds("--peer-cert-file /p.crt --peer-key-file=/p.key --peer-client-cert-auth --snapshot-count=3 --heartbeat-interval=250 "+
		"--election-timeout 2500 --logger=zap --log-outputs=/f --cert-file=/c --key-file /k --trusted-ca-file=/ca --client-cert-auth "+
		"--auto-tls --client-crl-file=/crl --initial-cluster-state=existing --listen-metrics-urls=http://127.0.0.1:2381 --quota-backend-bytes=8589934592", true)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.StepArgs, " "); got != "--peer-cert-file /p.crt --peer-key-file=/p.key --peer-client-cert-auth --listen-metrics-urls=http://127.0.0.1:2381 --quota-backend-bytes=8589934592" {
		t.Errorf("StepArgs = %q", got)
	}
	var flags []string
	for _, s := range c.Stripped {
		flags = append(flags, s.Flag)
	}
	if got := strings.Join(flags, " "); got != "--snapshot-count=3 --heartbeat-interval=250 --election-timeout=2500 --logger=zap --log-outputs=/f --cert-file=/c --key-file=/k --trusted-ca-file=/ca --client-cert-auth --auto-tls --client-crl-file=/crl --initial-cluster-state=existing" {
		t.Errorf("Stripped = %q", got)
	}
	if got := strings.Join(c.RaftArgs, " "); got != "--heartbeat-interval=250 --election-timeout 2500" {
		t.Errorf("RaftArgs = %q, want the raft timing for a member the data shows to be one of several", got)
	}
	if c.Client.CertFile != "/c" || !c.Client.ClientCertAuth || c.Peer.KeyFile != "/p.key" {
		t.Errorf("the model lost the TLS settings: client %+v peer %+v", c.Client, c.Peer)
	}
	// Several members: raft timing is the cluster's, kept.
	c, err = ParseCreds("--heartbeat-interval=250 --election-timeout=2500", false)
	if err != nil || strings.Join(c.StepArgs, " ") != "--heartbeat-interval=250 --election-timeout=2500" {
		t.Errorf("several members: %v, %q", err, c.StepArgs)
	}
	if c, err := ParseCreds("", true); err != nil || len(c.StepArgs) != 0 {
		t.Errorf("empty: %v %q", err, c.StepArgs)
	}

	for in, want := range map[string]string{
		"--data-dir=/x":       "ETCD_CREDS (--etcd-server-extra-args) sets --data-dir=/x: the steps run on the data dir migrate checked",
		"--wal-dir /w":        "--wal-dir=/w in ETCD_CREDS: the WAL dir is the served etcd's setting, not the steps' alone: give it as --wal-dir after -- or as ETCD_WAL_DIR",
		"--force-new-cluster": "ETCD_CREDS (--etcd-server-extra-args) sets --force-new-cluster: it would rewrite the membership",
		"--name=x":            "sets --name=x: the steps' member name is --name/ETCD_NAME",
		"--listen-client-urls=http://127.0.0.1:2379":                    "sets --listen-client-urls=http://127.0.0.1:2379: the steps listen on their private client URL",
		"--listen-metrics-urls=http://0.0.0.0:2381":                     "ETCD_CREDS (--etcd-server-extra-args) sets --listen-metrics-urls=http://0.0.0.0:2381: the migration etcd listens on loopback only; give the final etcd its listen URLs after --",
		"--listen-peer-urls https://10.0.0.1:2380":                      "sets --listen-peer-urls=https://10.0.0.1:2380: the migration etcd listens on loopback only",
		"-listen-client-http-urls=http://127.0.0.1:1,http://10.1.1.1:2": "loopback only",
		"--config-file=/c":     "sets --config-file=/c: etcd would then ignore every other flag",
		"--snapshot-count=few": "etcd args in ETCD_CREDS (--etcd-server-extra-args): --snapshot-count=few: invalid argument",
		"--peer-cert-file":     "flag needs an argument",
		"--peer-auto-tls true": `"true" is not a flag`,
	} {
		if _, err := ParseCreds(in, true); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCreds(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestPeerTLSCreds(t *testing.T) {
	served, err := ParseServed([]string{"--name=a", "--peer-cert-file", "/p.crt", "--peer-client-cert-auth", "--cert-file=/c.crt", "--peer-cert-allowed-cn=etcd"},
		env(map[string]string{"ETCD_PEER_KEY_FILE": "/p.key", "ETCD_PEER_TRUSTED_CA_FILE": "/ca.crt", "ETCD_PEER_CERT_FILE": "/shadowed.crt"}))
	if err != nil {
		t.Fatal(err)
	}
	c, err := PeerTLSCreds(served, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.StepArgs, " "); got != "--peer-cert-file /p.crt --peer-client-cert-auth --peer-cert-allowed-cn=etcd --peer-key-file=/p.key --peer-trusted-ca-file=/ca.crt" {
		t.Errorf("StepArgs = %q", got)
	}
	if c.What != PeerTLSWhat {
		t.Errorf("What = %q", c.What)
	}
}
