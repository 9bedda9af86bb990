package migrate

import (
	"errors"
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

func TestEtcdArgs(t *testing.T) {
	const dir = "/var/etcd/data"
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no args", nil, []string{"--data-dir=/var/etcd/data"}},
		{"empty args", []string{}, []string{"--data-dir=/var/etcd/data"}},
		{"other args", []string{"--name=etcd-0", "--listen-client-urls", "http://0.0.0.0:2379"},
			[]string{"--name=etcd-0", "--listen-client-urls", "http://0.0.0.0:2379", "--data-dir=/var/etcd/data"}},
		{"similar flag names are not data-dir", []string{"--data-dir-x=/x", "--wal-dir=/w", "data-dir=/x"},
			[]string{"--data-dir-x=/x", "--wal-dir=/w", "data-dir=/x", "--data-dir=/var/etcd/data"}},
		{"--data-dir=/x", []string{"--name=a", "--data-dir=/x"}, []string{"--name=a", "--data-dir=/x"}},
		{"--data-dir /x", []string{"--data-dir", "/x", "--name=a"}, []string{"--data-dir", "/x", "--name=a"}},
		{"-data-dir=/x", []string{"-data-dir=/x"}, []string{"-data-dir=/x"}},
		{"-data-dir /x", []string{"-data-dir", "/x"}, []string{"-data-dir", "/x"}},
		{"--data-dir= (empty value)", []string{"--data-dir="}, []string{"--data-dir="}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := EtcdArgs(dir, tc.args)
			if strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") || len(got) != len(tc.want) {
				t.Errorf("EtcdArgs(%q) = %q, want %q", tc.args, got, tc.want)
			}
		})
	}
}

func TestEtcdArgsDoesNotAliasUserArgs(t *testing.T) {
	user := make([]string, 1, 8) // spare capacity an append would reuse
	user[0] = "--name=a"
	got := EtcdArgs("/d", user)
	got[0] = "changed"
	if user[0] != "--name=a" {
		t.Errorf("EtcdArgs result aliases the user's slice: user[0] = %q", user[0])
	}
	if spare := user[:2][1]; spare != "" {
		t.Errorf("EtcdArgs wrote %q into the user's spare capacity", spare)
	}
}

func TestCheckExecArgs(t *testing.T) {
	c := &Config{DataDir: "/var/etcd/data"}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		args []string
		env  map[string]string
		want string // "" = accepted
	}{
		{nil, nil, ""},
		{[]string{"--data-dir=/var/etcd/data"}, nil, ""},
		{[]string{"--data-dir", "/var/etcd/data/"}, nil, ""},
		{nil, map[string]string{"ETCD_DATA_DIR": "/var/etcd/data"}, ""},
		{[]string{"--data-dir=/other"}, nil, "etcd would serve data dir /other (--data-dir after --) but the data dir to migrate is /var/etcd/data (--data-dir/DATA_DIRECTORY): make them the same"},
		{[]string{"-data-dir", "/other"}, nil, "etcd would serve data dir /other (--data-dir after --)"},
		{[]string{"--data-dir=/var/etcd/data", "--data-dir=/other"}, nil, "etcd would serve data dir /other (--data-dir after --)"},
		{[]string{"--data-dir=/other"}, map[string]string{"ETCD_DATA_DIR": "/var/etcd/data"}, "etcd would serve data dir /other (--data-dir after --)"},
		{[]string{"--wal-dir=/w"}, nil, ""},
		{nil, map[string]string{"ETCD_DATA_DIR": "/other"}, "etcd would serve data dir /other (ETCD_DATA_DIR)"},
	}
	for _, tc := range tests {
		err := c.CheckExecArgs(tc.args, env(tc.env))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q %v: unexpected error %v", tc.args, tc.env, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q %v: error %v, want %q", tc.args, tc.env, err, tc.want)
		case err != nil:
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Errorf("%q: not an InputError (exit 2): %T", tc.args, err)
			}
		}
	}
}

// TestExecArgsEnableV2: an etcd2 target is served with the v2 API, by the flag
// where the target has one (3.2 to 3.5) and without it before (2.x to 3.1, which
// would refuse the unknown flag).
func TestExecArgsEnableV2(t *testing.T) {
	for _, tc := range []struct {
		target string
		want   bool
	}{{"2.2.5/etcd2", false}, {"3.0.17/etcd2", false}, {"3.1.20/etcd2", false}, {"3.2.32/etcd2", true}, {"3.5.35/etcd2", true}, {"3.5.35/etcd3", false}} {
		c := &Config{DataDir: "/d", Target: versionfile.MustPair(tc.target)}
		got := strings.Contains(strings.Join(c.execArgs([]string{"--name=m"}), " "), "--enable-v2=true")
		if got != tc.want {
			t.Errorf("%s: --enable-v2=true added %v, want %v: %q", tc.target, got, tc.want, c.execArgs([]string{"--name=m"}))
		}
	}
}
