package datadir

import (
	"testing"

	"go.etcd.io/etcd/server/v3/etcdserver/api/v2store"
)

// TestStoreClusterVersion reads /0/version from the JSON etcd's own v2store saves,
// and from hand-written stores with the /1 tree first and without a version.
func TestStoreClusterVersion(t *testing.T) {
	st := v2store.New("/0", "/1")
	if _, err := st.Create("/0/version", false, "2.3.0", false, v2store.TTLOptionSet{ExpireTime: v2store.Permanent}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"/1/registry/pods/a", "/1/registry/pods/b", "/0/members/8e9e05c52164694d/attributes"} {
		if _, err := st.Create(k, false, `{"x":1}`, false, v2store.TTLOptionSet{ExpireTime: v2store.Permanent}); err != nil {
			t.Fatal(err)
		}
	}
	saved, err := st.Save()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, data, want string
	}{
		{"etcd's v2store", string(saved), "2.3.0"},
		{"the keys first", `{"Root":{"Path":"/","Children":{"1":{"Children":{"k":{"Value":"v"}}},"0":{"Children":{"version":{"Value":"3.0.0"}}}}}}`, "3.0.0"},
		{"no version", `{"Root":{"Path":"/","Children":{"0":{"Children":{"members":{}}}}}}`, ""},
		{"no /0", `{"Root":{"Path":"/","Children":{"1":{}}}}`, ""},
		{"no children", `{"Root":{"Path":"/"}}`, ""},
	} {
		got, err := storeClusterVersion([]byte(tc.data))
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := storeClusterVersion([]byte(`{"Root":[1]}`)); err == nil {
		t.Error("a store whose root is no object was accepted")
	}
}
