package v2tov3

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"go.etcd.io/etcd/server/v3/etcdserver/api/v2store"
	"go.uber.org/zap"
)

// V2Keys is the v2 keyspace of a data dir as an etcd2-mode step proves it kept:
// per key its createdIndex, modifiedIndex, expiry (a dir's when that comes first)
// and a hash of its value.
type V2Keys struct {
	Keys     map[string]V2Key
	Duration time.Duration
}

// V2Key is one key of V2Keys.
type V2Key struct {
	Created, Modified uint64
	Expires           time.Time // zero: no TTL
	Value             [sha256.Size]byte
}

// ReadV2Keys rebuilds the v2 store of dataDir offline, as etcd does at start
// (LoadStore), and reads its keys. It only reads dataDir.
func ReadV2Keys(lg *zap.Logger, dataDir string) (*V2Keys, error) {
	start := time.Now()
	tmp, err := os.MkdirTemp("", "etcd-migrate-v2keys-*")
	if err != nil {
		return nil, fmt.Errorf("v2 keys of %s: %w", dataDir, err)
	}
	defer os.RemoveAll(tmp)
	loaded, err := LoadStore(lg, dataDir, filepath.Join(tmp, "values"))
	if err != nil {
		return nil, fmt.Errorf("v2 keys of %s: %w", dataDir, err)
	}
	defer loaded.Close()
	ev, err := getKeys(loaded.Store)
	if err != nil {
		return nil, err
	}
	var nodes []*v2store.NodeExtern
	walkKeys(ev.Node, func(n *v2store.NodeExtern) { nodes = append(nodes, n) })
	// The spool hands out the snapshot's values in modifiedIndex order.
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ModifiedIndex < nodes[j].ModifiedIndex })
	ks := &V2Keys{Keys: make(map[string]V2Key, len(nodes))}
	var buf []byte
	for _, n := range nodes {
		if buf, err = loaded.value(n.ModifiedIndex, n.Value, buf); err != nil {
			return nil, fmt.Errorf("v2 keys of %s: %w", dataDir, err)
		}
		k := V2Key{Created: n.CreatedIndex, Modified: n.ModifiedIndex, Value: sha256.Sum256(buf)}
		if n.Expiration != nil {
			k.Expires = *n.Expiration
		}
		ks.Keys[n.Key] = k
	}
	ks.Duration = time.Since(start)
	return ks, nil
}

// CompareV2Keys checks that after holds every key of before unchanged and no
// other; a key whose expiry had passed by now may be gone (etcd deletes expired
// keys at its leader's next SYNC). It returns how many such keys were let go.
func CompareV2Keys(before, after *V2Keys, now time.Time) (expired int, err error) {
	for k, b := range before.Keys {
		a, ok := after.Keys[k]
		switch {
		case !ok && !b.Expires.IsZero() && !b.Expires.After(now):
			expired++
		case !ok:
			return expired, fmt.Errorf("v2 key %q was lost", k)
		case a.Created != b.Created || a.Modified != b.Modified || !a.Expires.Equal(b.Expires) || a.Value != b.Value:
			return expired, fmt.Errorf("v2 key %q changed: createdIndex %d -> %d, modifiedIndex %d -> %d, expiry %v -> %v, value equal %v",
				k, b.Created, a.Created, b.Modified, a.Modified, b.Expires, a.Expires, a.Value == b.Value)
		}
	}
	for k := range after.Keys {
		if _, ok := before.Keys[k]; !ok {
			return expired, fmt.Errorf("v2 key %q appeared", k)
		}
	}
	return expired, nil
}
