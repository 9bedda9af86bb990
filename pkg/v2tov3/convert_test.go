package v2tov3

import (
	"context"
	"fmt"
	"path/filepath"
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
