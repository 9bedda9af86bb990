package migrate

import (
	"strings"
	"testing"
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
