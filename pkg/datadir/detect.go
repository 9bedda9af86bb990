package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-version"
	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/server/v3/storage/schema"

	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// State is what the data in a data dir says about itself, independent of version.txt.
type State struct {
	// Empty: no member directory and nothing else but lost+found/version.txt.
	Empty bool
	// Storage is etcd3 when the v3 backend (member/snap/db) exists, etcd2 when only
	// the WAL and v2 snapshots do.
	Storage versionfile.Storage
	// StorageVersion is the meta bucket's storageVersion (written by etcd 3.6+).
	StorageVersion string
	// ClusterVersion is the cluster bucket's clusterVersion, written by every etcd
	// 3.x once it has decided the cluster version ("3.0.0" by 3.0.17 ... "3.4.0" by
	// 3.4.13; checked on data written by real 3.0.17, 3.1.20, 3.2.32 and 3.3.27).
	ClusterVersion string
	// HasTerm: the meta bucket holds the raft term (written by every etcd 3.5+ apply).
	HasTerm bool
	// HasV3Keys: the key bucket holds an entry; without one no v3 key was ever
	// written (etcd 3.x serving etcd2 data still creates the backend).
	HasV3Keys bool
	// WALClusterVersion is the cluster version the WAL sets after the newest
	// snapshot, when that is a newer minor than the backend records: a step cut
	// short before its etcd's backend committed the version it set.
	WALClusterVersion string
}

// MinorFromData is the major.minor the backend shows it was last written by, and
// whether the data tells it: storage version (3.6+), else cluster version (every
// 3.x), else the term (3.5+), else nothing certain (an etcd that never decided its
// cluster version).
//
// With the term, a cluster version of exactly 3.0.0 is the one a new cluster of
// 3.5+ members records until every member has published its version (etcd's
// "setting up initial cluster version using v2 API"), and keeps while one never
// has: measured with three 3.5.35 members stopped once they served. That data was
// written by 3.5. (Member dirs migrate writes for etcd 3.0-3.4 carry no term:
// memberdir.Fit.)
func (s State) MinorFromData() (string, bool) {
	for _, v := range []string{s.WALClusterVersion, s.StorageVersion, s.ClusterVersion} {
		if v == "" {
			continue
		}
		if sv, err := versionfile.ParseVersion(v); err == nil {
			if s.HasTerm && v == "3.0.0" {
				return "3.5", true
			}
			return versionfile.MinorString(sv), true
		}
	}
	if s.HasTerm {
		return "3.5", true
	}
	return "", false
}

// String describes the state for logs and error messages.
func (s State) String() string {
	switch {
	case s.Empty:
		return "empty data dir"
	case s.Storage == versionfile.StorageEtcd2:
		return "etcd2 data (WAL and v2 snapshots, no v3 backend)"
	}
	var parts []string
	if s.StorageVersion != "" {
		parts = append(parts, "storage version "+s.StorageVersion)
	}
	if s.ClusterVersion != "" {
		parts = append(parts, "cluster version "+s.ClusterVersion)
	}
	if s.WALClusterVersion != "" {
		parts = append(parts, "cluster version "+s.WALClusterVersion+" in the WAL, not yet in the backend")
	}
	if len(parts) == 0 {
		if s.HasTerm {
			parts = append(parts, "written by etcd 3.5")
		} else {
			parts = append(parts, "written by etcd 3.4 or older")
		}
	}
	return "etcd3 data (" + strings.Join(parts, ", ") + ")"
}

// Detect reads the state of dataDir from the data alone, without changing a byte:
// the bolt backend is opened read-only.
func Detect(dataDir string) (State, error) {
	entries, err := os.ReadDir(dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return State{Empty: true}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read data dir %s: %w", dataDir, err)
	}
	hasMember, hasWork := false, false
	var other []string
	for _, e := range entries {
		switch e.Name() {
		case "member":
			hasMember = true
		case versionfile.FileName, "lost+found", BackupDirName:
		default:
			if strings.HasPrefix(e.Name(), WorkDirPrefix) {
				hasWork = true
				continue
			}
			if !strings.HasPrefix(e.Name(), "."+versionfile.FileName+".tmp-") {
				other = append(other, e.Name())
			}
		}
	}
	if !hasMember {
		if hasWork {
			return State{}, fmt.Errorf("data dir %s has no member dir but a %s* work dir of an interrupted step: rerun migrate, which restores the original member dir first", dataDir, WorkDirPrefix)
		}
		if len(other) > 0 {
			return State{}, fmt.Errorf("data dir %s holds %q but no etcd member directory: point --data-dir at an etcd data dir or an empty dir", dataDir, other[0])
		}
		return State{Empty: true}, nil
	}
	return DetectMemberDir(dataDir, filepath.Join(dataDir, "member"))
}

// DetectMemberDir reads the state of the data in memberDir (laid out as a data
// dir's member directory) read-only; dataDir names the data dir in errors.
func DetectMemberDir(dataDir, memberDir string) (State, error) {
	backend := filepath.Join(memberDir, "snap", "db")
	walDir := filepath.Join(memberDir, "wal")
	if _, err := os.Stat(backend); err == nil {
		st, err := readBackend(backend)
		if err != nil {
			return State{}, err
		}
		st.Storage = versionfile.StorageEtcd3
		if err := st.addWALClusterVersion(memberDir); err != nil {
			return State{}, fmt.Errorf("data dir %s: %w", dataDir, err)
		}
		return st, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return State{}, fmt.Errorf("stat %s: %w", backend, err)
	}
	wals, _ := filepath.Glob(filepath.Join(walDir, "*.wal"))
	if len(wals) > 0 {
		return State{Storage: versionfile.StorageEtcd2}, nil
	}
	return State{}, fmt.Errorf("data dir %s has a member directory but neither %s nor WAL files in %s: it is not a complete etcd data dir", dataDir, backend, walDir)
}

// addWALClusterVersion records the WAL's cluster version when it is a newer minor
// than the backend's (only an upgrade step cut short leaves that; a rollback's
// lower version is the step's own business, and its backend follows).
func (s *State) addWALClusterVersion(memberDir string) error {
	v, err := walClusterVersion(memberDir)
	if err != nil || v == "" {
		return err
	}
	wv, err := versionfile.ParseVersion(v)
	if err != nil {
		return nil
	}
	if minor, known := s.MinorFromData(); known {
		if bv, err := version.NewVersion(minor + ".0"); err == nil && versionfile.CompareMinor(bv, wv) >= 0 {
			return nil
		}
	}
	s.WALClusterVersion = v
	return nil
}

func readBackend(path string) (State, error) {
	db, err := v3backend.OpenReadOnly(path)
	if err != nil {
		return State{}, err
	}
	defer db.Close()
	var st State
	err = db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(schema.Meta.Name()); meta != nil {
			st.StorageVersion = string(meta.Get(schema.MetaStorageVersionName))
			st.HasTerm = len(meta.Get(schema.MetaTermKeyName)) > 0
		}
		if cl := tx.Bucket(schema.Cluster.Name()); cl != nil {
			st.ClusterVersion = string(cl.Get(schema.ClusterClusterVersionKeyName))
		}
		st.HasV3Keys = v3backend.HasKeyRevisions(tx)
		return nil
	})
	if err != nil {
		return State{}, fmt.Errorf("read etcd backend %s: %w", path, err)
	}
	return st, nil
}
