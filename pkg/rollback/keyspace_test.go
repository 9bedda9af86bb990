package rollback

import (
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func keys(kvs ...string) []Key {
	var out []Key
	for i := 0; i+1 < len(kvs); i += 2 {
		out = append(out, Key{KV: mvccpb.KeyValue{Key: []byte(kvs[i]), Value: []byte(kvs[i+1])}})
	}
	return out
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name string
		keys []Key
		want string // "" = accepted
	}{
		{"json under the prefix, anything outside", keys("/registry/a", `{"x":1}`, "/other/b", "k8s\x00raw"), ""},
		{"protobuf under the prefix", keys("/registry/a", "k8s\x00\x0a", "/registry/b", `{}`, "/registry/c", "k8s\x00"),
			`2 values under /registry/ are not JSON (first: "/registry/a"; protobuf starts with "k8s\x00")`},
		{"relative key", keys("registry/a", `{}`), `key "registry/a" is not a clean absolute path`},
		{"trailing slash", keys("/registry/a/", `{}`), `key "/registry/a/" is not a clean absolute path`},
		{"double slash", keys("/registry//a", `{}`), `key "/registry//a" is not a clean absolute path`},
		{"hidden segment", keys("/registry/_hidden/a", `{}`), `key "/registry/_hidden/a" has a segment starting with "_"`},
		{"key that is also a directory", keys("/registry/a", `{}`, "/registry/a/b", `{}`), `key "/registry/a" is also the directory of key "/registry/a/b"`},
		{"siblings sharing a prefix are fine", keys("/registry/a", `{}`, "/registry/a-b", `{}`, "/registry/ab/c", `{}`), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Check(c.keys, "/registry")
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Check = %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Check = %v, want %q", err, c.want)
			}
		})
	}
}
