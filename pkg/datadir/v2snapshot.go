package datadir

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.uber.org/zap"
)

// SnapshotClusterVersion is the cluster version the newest readable v2 snapshot of
// dataDir records (the v2 store's /0/version, as every etcd 2.x and 3.x writes it),
// with the snapshot's index; "" and 0 when there is none. An etcd2-mode step counts
// as done once its etcd saved a snapshot recording its own minor. It only reads:
// etcd's Snapshotter.Load would rename a snapshot it cannot read, which etcd 2.x
// may still be writing (it writes in place, not by rename).
func SnapshotClusterVersion(dataDir string) (string, uint64, error) {
	files, err := SnapFiles(SnapDir(dataDir))
	if err != nil {
		return "", 0, err
	}
	for _, f := range files {
		s, err := snap.Read(zap.NewNop(), f.Path)
		if err != nil {
			continue // being written, or broken: etcd skips it too
		}
		v, err := storeClusterVersion(s.Data)
		if err != nil {
			return "", 0, fmt.Errorf("v2 snapshot %s: %w", f.Path, err)
		}
		return v, s.Metadata.Index, nil
	}
	return "", 0, nil
}

// storeClusterVersion reads /0/version from a v2 store's snapshot JSON without
// decoding the keys: the store marshals its children's map in key order, so /0
// comes before the /1 tree, which can be hundreds of MB; reading stops at /0.
func storeClusterVersion(data []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	// {"Root": {..., "Children": {"0": {...}, "1": {...}}}, ...}
	for _, key := range []string{"Root", "Children", "0"} {
		found, err := enterField(dec, key)
		if err != nil || !found {
			return "", err
		}
	}
	var zero struct {
		Children map[string]struct{ Value string }
	}
	if err := dec.Decode(&zero); err != nil {
		return "", err
	}
	return zero.Children["version"].Value, nil
}

// enterField reads the next object's fields up to key, skipping the others'
// values, and leaves dec at key's value. found is false when the object has none.
func enterField(dec *json.Decoder, key string) (found bool, err error) {
	t, err := dec.Token()
	if err != nil {
		return false, err
	}
	if t != json.Delim('{') {
		return false, fmt.Errorf("not a v2 store: %v where an object holding %q belongs", t, key)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return false, err
		}
		if t == key {
			return true, nil
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false, err
		}
	}
	return false, nil
}
