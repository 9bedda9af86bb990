package v2tov3

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/etcdserver/api/v2store"
	"go.uber.org/zap"
)

// storeWith returns a v2 store with n keys under /registry/pods, of which the
// ttl-th ones (every key when ttl == 1, none when 0) have a TTL.
func storeWith(tb testing.TB, n, ttlEvery int) v2store.Store {
	st := v2store.New(clusterPrefix, keysPrefix)
	exp := time.Now().Add(time.Hour)
	value := string(make([]byte, 1300))
	for i := 0; i < n; i++ {
		opts := v2store.TTLOptionSet{}
		if ttlEvery > 0 && i%ttlEvery == 0 {
			opts.ExpireTime = exp.Add(time.Duration(i%300) * time.Second)
		}
		if _, err := st.Set(fmt.Sprintf("%s/registry/pods/ns-%d/pod-%d", keysPrefix, i%50, i), false, value, opts); err != nil {
			tb.Fatal(err)
		}
	}
	return st
}

func TestWriteBackendLeases(t *testing.T) {
	st := storeWith(t, 1000, 2)
	// One key that expired already, one key in the TTL keys dir without a TTL.
	st.Set(keysPrefix+"/registry/events/gone", false, "x", v2store.TTLOptionSet{ExpireTime: time.Now().Add(-time.Second)})
	st.Set(keysPrefix+"/registry/events/kept", false, "y", v2store.TTLOptionSet{})
	res := &Result{}
	path := filepath.Join(t.TempDir(), "db")
	opts := Options{Now: time.Now, TTLKeysDir: "/registry/events", DefaultTTL: time.Hour, ClusterVersion: "3.4.0"}
	if err := writeBackend(context.Background(), zap.NewNop(), path, &LoadResult{Store: st}, opts, res); err != nil {
		t.Fatal(err)
	}
	if res.Keys != 1001 || res.Expired != 1 || res.TTLKeys != 500 || res.DefaultTTLs != 1 {
		t.Fatalf("result %+v: want 1001 keys, 1 expired, 500 TTL keys, 1 default-TTL key", res)
	}
	// Even i only: 150 distinct expiry seconds (3600+0,2,..,298 s, give or take the
	// second boundary) plus the default hour: one lease per distinct TTL.
	if res.Leases < 150 || res.Leases > 152 {
		t.Fatalf("%d leases, want one per distinct remaining TTL second (about 151)", res.Leases)
	}
	got, err := backendDigest(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.keys != res.Keys || got.digest != res.Digest {
		t.Fatalf("read back %d keys digest %s, wrote %d keys digest %s", got.keys, got.digest, res.Keys, res.Digest)
	}
}

// TestWriteBackendTTLDir: keys below a v2 directory with a TTL (etcd 2.x and 3.x
// take `PUT ?dir=true&ttl=N`) expire with it: a key without a TTL of its own, or
// with a later one, gets the directory's remaining TTL, nested dirs included; a
// key with an earlier TTL keeps its own; below an expired directory nothing is
// converted.
func TestWriteBackendTTLDir(t *testing.T) {
	st := v2store.New(clusterPrefix, keysPrefix)
	now := time.Now()
	set := func(key string, dir bool, in time.Duration) {
		t.Helper()
		opts := v2store.TTLOptionSet{}
		if in != 0 {
			opts.ExpireTime = now.Add(in)
		}
		if _, err := st.Set(keysPrefix+key, dir, "v", opts); err != nil {
			t.Fatal(err)
		}
	}
	set("/registry/ttl-dir", true, 2*time.Hour)
	set("/registry/ttl-dir/plain", false, 0)
	set("/registry/ttl-dir/later", false, 3*time.Hour)
	set("/registry/ttl-dir/earlier", false, time.Hour)
	set("/registry/ttl-dir/sub/deep", false, 0)
	set("/registry/gone-dir", true, -time.Second)
	set("/registry/gone-dir/plain", false, 0)
	set("/registry/plain", false, 0)
	res := &Result{}
	loaded := &LoadResult{Store: st}
	items, err := listKeys(loaded, Options{Now: func() time.Time { return now }}, res)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, it := range items {
		got[strings.TrimPrefix(it.key, keysPrefix)] = it.ttl
	}
	want := map[string]int64{
		"/registry/ttl-dir/plain": 7200, "/registry/ttl-dir/later": 7200, "/registry/ttl-dir/earlier": 3600,
		"/registry/ttl-dir/sub/deep": 7200, "/registry/plain": 0,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("keys and TTLs %v, want %v", got, want)
	}
	if res.Expired != 1 || res.TTLKeys != 4 {
		t.Fatalf("result %+v: want 1 expired, 4 TTL keys", res)
	}
}

// BenchmarkWriteBackendTTL measures what leases cost the offline conversion: the
// same 10k keys written with a TTL on every key and on none.
func BenchmarkWriteBackendTTL(b *testing.B) {
	for _, c := range []struct {
		name     string
		ttlEvery int
	}{{"no-ttl", 0}, {"all-ttl", 1}} {
		st := storeWith(b, 10000, c.ttlEvery)
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				res := &Result{}
				opts := Options{Now: time.Now, TTLKeysDir: "/registry/events", DefaultTTL: time.Hour}
				if err := writeBackend(context.Background(), zap.NewNop(), filepath.Join(b.TempDir(), "db"), &LoadResult{Store: st}, opts, res); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(10000)/(float64(b.Elapsed().Seconds())/float64(b.N)), "keys/s")
		})
	}
}
