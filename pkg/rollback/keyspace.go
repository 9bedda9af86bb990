package rollback

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/storage/schema"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
)

// Key is one live v3 key.
type Key struct {
	KV mvccpb.KeyValue
	// TTL is the lease's remaining TTL in seconds (0: no lease).
	TTL int64
}

// ReadKeyspace reads the live keys (latest revision, not deleted) and their lease
// TTLs from dataDir's backend, read-only. A lease's remaining TTL is its checkpointed
// remaining TTL when etcd recorded one, else its TTL (what etcd grants it at start).
func ReadKeyspace(dataDir string) ([]Key, error) {
	p := datadir.BackendPath(dataDir)
	db, err := v3backend.OpenReadOnly(p)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	latest := map[string]Key{}
	err = db.View(func(tx *bolt.Tx) error {
		ttls, err := v3backend.LeaseTTLs(tx)
		if err != nil {
			return err
		}
		if tx.Bucket(schema.Key.Name()) == nil {
			return nil
		}
		// Revision order: the last entry of a key is its current state.
		return v3backend.ForEachRevision(tx, func(kv *mvccpb.KeyValue, tombstone bool) error {
			if tombstone {
				delete(latest, string(kv.Key))
			} else {
				c := *kv // ForEachRevision reuses kv's buffers
				c.Key, c.Value = append([]byte(nil), kv.Key...), append([]byte(nil), kv.Value...)
				latest[string(kv.Key)] = Key{KV: c, TTL: ttls[kv.Lease]}
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	keys := make([]Key, 0, len(latest))
	for _, k := range latest {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i].KV.Key, keys[j].KV.Key) < 0 })
	return keys, nil
}

// Check refuses, before anything is touched, a keyspace the v2 store cannot hold
// without loss: values under prefix that are not JSON (Kubernetes' protobuf
// encoding: v2-era API servers read JSON only), keys that are not clean absolute
// paths or have hidden ("_") segments, and a key that is also another key's parent
// directory.
func Check(keys []Key, prefix string) error {
	prefix = strings.TrimSuffix(prefix, "/") + "/"
	nonJSON, firstNonJSON := 0, ""
	for _, k := range keys {
		key := string(k.KV.Key)
		if strings.HasPrefix(key, prefix) && !json.Valid(k.KV.Value) {
			if nonJSON == 0 {
				firstNonJSON = key
			}
			nonJSON++
		}
		if !strings.HasPrefix(key, "/") || path.Clean(key) != key || key == "/" {
			return fmt.Errorf("key %q is not a clean absolute path, which the v2 store requires: keep TARGET_STORAGE=etcd3", key)
		}
		for _, seg := range strings.Split(key[1:], "/") {
			if strings.HasPrefix(seg, "_") {
				return fmt.Errorf("key %q has a segment starting with \"_\", which the v2 API hides: keep TARGET_STORAGE=etcd3", key)
			}
		}
	}
	if nonJSON > 0 {
		return fmt.Errorf("%d values under %s are not JSON (first: %q; protobuf starts with \"k8s\\x00\"), and etcd2-era API servers read JSON only: rewrite them with STORAGE_MEDIA_TYPE=application/json first, or keep TARGET_STORAGE=etcd3", nonJSON, prefix, firstNonJSON)
	}
	// Sorted keys: a key that is a parent dir of another sorts right before its
	// children (with '/' after it).
	for i := 0; i+1 < len(keys); i++ {
		a := string(keys[i].KV.Key)
		for j := i + 1; j < len(keys) && strings.HasPrefix(string(keys[j].KV.Key), a); j++ {
			if strings.HasPrefix(string(keys[j].KV.Key), a+"/") {
				return fmt.Errorf("key %q is also the directory of key %q, which the v2 store cannot hold: keep TARGET_STORAGE=etcd3", a, keys[j].KV.Key)
			}
		}
	}
	return nil
}
