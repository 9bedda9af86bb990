package datadir

import (
	"encoding/json"
	"errors"
	"fmt"

	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.uber.org/zap"
)

// SnapshotClusterVersion is the cluster version the newest v2 snapshot of dataDir
// records (the v2 store's /0/version, as every etcd 2.x and 3.x writes it), with
// the snapshot's index; "" and 0 when there is no snapshot. An etcd2-mode step
// counts as done once its etcd saved a snapshot recording its own minor.
func SnapshotClusterVersion(dataDir string) (string, uint64, error) {
	s, err := snap.New(zap.NewNop(), SnapDir(dataDir)).Load()
	if errors.Is(err, snap.ErrNoSnapshot) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("load v2 snapshot in %s: %w", SnapDir(dataDir), err)
	}
	// Two levels are decoded (/0/version); deeper keys are skipped unparsed.
	var store struct {
		Root struct {
			Children map[string]*struct {
				Children map[string]*struct{ Value string }
			}
		}
	}
	if err := json.Unmarshal(s.Data, &store); err != nil {
		return "", 0, fmt.Errorf("v2 snapshot at index %d in %s: %w", s.Metadata.Index, SnapDir(dataDir), err)
	}
	if m := store.Root.Children["0"]; m != nil {
		if v := m.Children["version"]; v != nil {
			return v.Value, s.Metadata.Index, nil
		}
	}
	return "", s.Metadata.Index, nil
}
