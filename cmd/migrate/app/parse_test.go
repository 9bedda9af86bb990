package app

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	env := withEnv(map[string]string{"ETCD_NAME": "etcd-master", "ETCD_CREDS": "--peer-auto-tls=true"})
	inv, err := Parse([]string{"--port=18629", "--", "--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379"},
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c := inv.Config
	if c.DataDir != "/var/etcd/data" || c.Target.String() != "3.6.16/etcd3" || c.Name != "etcd-master" ||
		c.ClientURL != "http://127.0.0.1:18629" || strings.Join(c.ExtraArgs, " ") != "--peer-auto-tls=true" || !inv.Exec {
		t.Errorf("Parse = %+v", inv)
	}
	if got := strings.Join(inv.EtcdArgs, " "); got != "--listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379" {
		t.Errorf("EtcdArgs = %q", got)
	}
	if inv.BundledVersions != testBundled {
		t.Errorf("BundledVersions = %q", inv.BundledVersions)
	}
}

func TestParseErrors(t *testing.T) {
	env := baseEnv()
	getenv := func(k string) string { return env[k] }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plan"}, "is the plan command"},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"--", "--data-dir=/elsewhere"}, "etcd would serve data dir /elsewhere"},
		{[]string{"--target-version=3.6"}, `invalid etcd version "3.6"`},
	} {
		_, err := Parse(tc.args, getenv)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !IsUsageError(err) {
			t.Errorf("Parse(%q) = %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
}
