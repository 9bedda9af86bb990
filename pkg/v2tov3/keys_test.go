package v2tov3

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"
)

func TestCompareV2Keys(t *testing.T) {
	now := time.Now()
	base := func() *V2Keys {
		return &V2Keys{Keys: map[string]V2Key{
			"/1/a":       {Created: 4, Modified: 9, Value: sha256.Sum256([]byte("v"))},
			"/1/ttl":     {Created: 5, Modified: 5, Expires: now.Add(time.Hour)},
			"/1/expired": {Created: 6, Modified: 6, Expires: now.Add(-time.Second)},
		}}
	}
	if n, err := CompareV2Keys(base(), base(), now); err != nil || n != 0 {
		t.Fatalf("same keys: %d, %v", n, err)
	}
	for _, tc := range []struct {
		name    string
		change  func(k *V2Keys)
		want    string
		expired int
	}{
		{"an expired key swept", func(k *V2Keys) { delete(k.Keys, "/1/expired") }, "", 1},
		{"a key lost", func(k *V2Keys) { delete(k.Keys, "/1/ttl") }, `v2 key "/1/ttl" was lost`, 0},
		{"a value changed", func(k *V2Keys) { a := k.Keys["/1/a"]; a.Value[0]++; k.Keys["/1/a"] = a }, `v2 key "/1/a" changed`, 0},
		{"an index moved", func(k *V2Keys) { a := k.Keys["/1/a"]; a.Modified++; k.Keys["/1/a"] = a }, "modifiedIndex 9 -> 10", 0},
		{"a TTL changed", func(k *V2Keys) { a := k.Keys["/1/ttl"]; a.Expires = a.Expires.Add(time.Second); k.Keys["/1/ttl"] = a }, `v2 key "/1/ttl" changed`, 0},
		{"a key appeared", func(k *V2Keys) { k.Keys["/1/new"] = V2Key{Created: 10, Modified: 10} }, `v2 key "/1/new" appeared`, 0},
	} {
		after := base()
		tc.change(after)
		n, err := CompareV2Keys(base(), after, now)
		if tc.want == "" {
			if err != nil || n != tc.expired {
				t.Errorf("%s: %d, %v; want %d expired and no error", tc.name, n, err, tc.expired)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	// The same instant in another location is the same expiry.
	after := base()
	k := after.Keys["/1/ttl"]
	k.Expires = k.Expires.UTC()
	after.Keys["/1/ttl"] = k
	if _, err := CompareV2Keys(base(), after, now); err != nil {
		t.Errorf("an expiry read in UTC: %v", err)
	}
}
