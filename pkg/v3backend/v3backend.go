// Package v3backend reads an etcd v3 backend (bolt) offline: key revisions and lease
// TTLs, with etcd's own schema. Conversions use it to read back what they wrote and
// to read the keyspace they convert.
package v3backend

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
)

// LeaseTTLs maps each lease ID to its remaining TTL in seconds: the checkpointed
// remaining TTL when etcd recorded one, else the granted TTL (what etcd gives a
// lease when it starts).
func LeaseTTLs(tx *bolt.Tx) (map[int64]int64, error) {
	ttls := map[int64]int64{}
	lb := tx.Bucket(schema.Lease.Name())
	if lb == nil {
		return ttls, nil
	}
	err := lb.ForEach(func(_, v []byte) error {
		var l leasepb.Lease
		if err := l.Unmarshal(v); err != nil {
			return fmt.Errorf("lease record: %w", err)
		}
		ttls[l.ID] = l.TTL
		if l.RemainingTTL > 0 {
			ttls[l.ID] = l.RemainingTTL
		}
		return nil
	})
	return ttls, err
}

// ForEachRevision calls fn for every key revision in revision order; tombstone
// marks a deletion. kv and its Key and Value are reused for the next revision: fn
// must copy what it keeps (decoding into one record instead of a new one per
// revision halves the cost of a scan).
func ForEachRevision(tx *bolt.Tx, fn func(kv *mvccpb.KeyValue, tombstone bool) error) error {
	kb := tx.Bucket(schema.Key.Name())
	if kb == nil {
		return fmt.Errorf("no %q bucket", schema.Key.Name())
	}
	var kv mvccpb.KeyValue
	return kb.ForEach(func(k, v []byte) error {
		// Unmarshal merges into what is there: reset every field, keep the buffers.
		kv = mvccpb.KeyValue{Key: kv.Key[:0], Value: kv.Value[:0]}
		if err := kv.Unmarshal(v); err != nil {
			return fmt.Errorf("key revision record: %w", err)
		}
		return fn(&kv, mvcc.IsTombstone(k))
	})
}
