package versionfile

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
)

// State is what the data in a data dir says about itself, independent of version.txt.
type State struct {
	// Empty: no member directory and nothing else but lost+found/version.txt.
	Empty bool
	// Storage is etcd3 when the v3 backend (member/snap/db) exists, etcd2 when only
	// the WAL and v2 snapshots do.
	Storage Storage
	// StorageVersion is the meta bucket's storageVersion (written by etcd 3.6+).
	StorageVersion string
	// ClusterVersion is the cluster bucket's clusterVersion (written by etcd 3.4+
	// once it has decided the cluster version: 3.4.13 writes "3.4.0").
	ClusterVersion string
	// HasTerm: the meta bucket holds the raft term (written by every etcd 3.5+ apply).
	HasTerm bool
	// KeyRevisions counts the key bucket's entries: 0 means no v3 key was ever
	// written (etcd 3.x serving etcd2 data still creates the backend).
	KeyRevisions int
	// WALClusterVersion is the cluster version the WAL sets after the newest
	// snapshot, when that is a newer minor than the backend records: a step cut
	// short before its etcd's backend committed the version it set.
	WALClusterVersion string
}

// MinorFromData is the major.minor the backend shows it was last written by, and
// whether the data tells it: storage version (3.6+), else cluster version (3.4+),
// else the term (3.5+), else nothing certain (etcd 3.3 and older, or a 3.4 that
// never decided its cluster version).
func (s State) MinorFromData() (string, bool) {
	for _, v := range []string{s.WALClusterVersion, s.StorageVersion, s.ClusterVersion} {
		if v == "" {
			continue
		}
		if sv, err := ParseVersion(v); err == nil {
			return MinorString(sv), true
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
	case s.Storage == StorageEtcd2:
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

// WorkDirPrefix starts the names of the work dirs a step keeps in the data dir
// (pkg/memberdir); one may hold the original member dir until version.txt records
// the step.
const WorkDirPrefix = ".migrate-"

// Paths inside a data dir, as etcd lays them out.
func BackendPath(dataDir string) string { return filepath.Join(dataDir, "member", "snap", "db") }
func WALDir(dataDir string) string      { return filepath.Join(dataDir, "member", "wal") }
func SnapDir(dataDir string) string     { return filepath.Join(dataDir, "member", "snap") }

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
		case FileName, "lost+found":
		default:
			if strings.HasPrefix(e.Name(), WorkDirPrefix) {
				hasWork = true
				continue
			}
			if !strings.HasPrefix(e.Name(), "."+FileName+".tmp-") {
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
		st.Storage = StorageEtcd3
		if err := st.addWALClusterVersion(memberDir); err != nil {
			return State{}, fmt.Errorf("data dir %s: %w", dataDir, err)
		}
		return st, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return State{}, fmt.Errorf("stat %s: %w", backend, err)
	}
	wals, _ := filepath.Glob(filepath.Join(walDir, "*.wal"))
	if len(wals) > 0 {
		return State{Storage: StorageEtcd2}, nil
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
	wv, err := ParseVersion(v)
	if err != nil {
		return nil
	}
	if minor, known := s.MinorFromData(); known {
		if bv, err := version.NewVersion(minor + ".0"); err == nil && CompareMinor(bv, wv) >= 0 {
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
		if kb := tx.Bucket(schema.Key.Name()); kb != nil {
			st.KeyRevisions = kb.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		return State{}, fmt.Errorf("read etcd backend %s: %w", path, err)
	}
	return st, nil
}

// CheckAgainst refuses a version.txt whose pair the data contradicts, naming both
// (see Reconcile).
func (s State) CheckAgainst(p Pair) error {
	_, err := s.Reconcile(p)
	return err
}

// Reconcile checks version.txt's pair p against what the data records and returns
// the pair planning starts from.
//
// What the data records: etcd 3.4+ writes the cluster version into the backend,
// 3.5+ also the raft term, 3.6+ the storage version; etcd2 data has no v3 backend,
// or one without a single v3 key (etcd 3.x serving the v2 API creates it).
//
// The data may be one minor ahead of or behind version.txt: an upgrade or rollback
// step changed what the data records and was cut short before it recorded itself.
// Then the data is at that step's minor, and planning starts there with the patch
// unknown, so a target at version.txt's minor is a step back, never an exec of an
// etcd that refuses the data. Any other disagreement is an error.
func (s State) Reconcile(p Pair) (Pair, error) {
	if s.Empty {
		return p, nil
	}
	wrote := "the version that last wrote the data"
	if minor, known := s.MinorFromData(); known {
		wrote += " (an etcd " + minor + " release)"
	}
	contradiction := func(why string) error {
		return fmt.Errorf("version.txt says %s but the data is %s: %s; fix version.txt to name %s, or remove it to let migrate detect the state", p, s, why, wrote)
	}
	if p.Storage == StorageEtcd3 && s.Storage == StorageEtcd2 {
		return Pair{}, contradiction("etcd3 data needs the v3 backend member/snap/db")
	}
	if s.Storage == StorageEtcd2 {
		return p, nil
	}
	if p.Storage == StorageEtcd2 && s.KeyRevisions > 0 {
		return Pair{}, fmt.Errorf("version.txt says %s but the data is %s: its v3 backend holds %d key revisions, so the data is etcd3; fix version.txt to <version>/etcd3 naming %s, or remove it to let migrate detect the state", p, s, s.KeyRevisions, wrote)
	}
	minor, known := s.MinorFromData()
	if !known {
		// etcd 3.4 records its cluster version once it has decided it, 3.5+ also
		// the term at its first apply: only an older etcd, or a 3.4 that never
		// got that far, leaves neither.
		if CompareMinor(p.Version, MustVersion("3.5.0")) >= 0 {
			return Pair{}, contradiction("an etcd 3.5 or newer would have recorded its term in the backend")
		}
		return p, nil
	}
	dv, err := version.NewVersion(minor + ".0")
	if err != nil {
		return Pair{}, contradiction("the backend's recorded version cannot be parsed")
	}
	c := CompareMinor(dv, p.Version)
	if c == 0 {
		return p, nil
	}
	oneStep := Major(dv) == p.Major() && (Minor(dv) == p.Minor()+1 || Minor(dv)+1 == p.Minor())
	if p.Storage == StorageEtcd2 {
		// etcd2 data converts from its v2 store alone, whatever served it last;
		// a newer etcd than version.txt says beyond one minor is a wrong file.
		if c > 0 && !oneStep {
			return Pair{}, contradiction("the data was written by a newer etcd than version.txt says")
		}
		return p, nil
	}
	if !oneStep {
		if c > 0 {
			return Pair{}, contradiction("the data was written by a newer etcd than version.txt says")
		}
		return Pair{}, contradiction("the data records an older version than version.txt, beyond the one minor a rollback step cut short leaves")
	}
	return Pair{Version: dv, Storage: StorageEtcd3, PatchUnknown: true}, nil
}

// FromState turns a detected state into the pair version.txt would hold, for a data
// dir that has none. It refuses when the data does not tell the version exactly.
func FromState(s State) (Pair, error) {
	switch {
	case s.Storage == StorageEtcd2:
		return Pair{}, fmt.Errorf("detected %s, which does not record the etcd version that wrote it: write version.txt naming it, e.g. echo 2.2.1/etcd2 > version.txt", s)
	case s.StorageVersion == "" && s.ClusterVersion == "":
		return Pair{}, fmt.Errorf("detected %s, which does not record the etcd version exactly: write version.txt naming the version that last served it, e.g. echo 3.4.13/etcd3 > version.txt", s)
	}
	minor, ok := s.MinorFromData()
	v, err := version.NewVersion(minor + ".0")
	if !ok || err != nil {
		return Pair{}, fmt.Errorf("detected %s, whose recorded version cannot be parsed: write version.txt naming the version that last served it, e.g. echo 3.5.35/etcd3 > version.txt", s)
	}
	if s.KeyRevisions == 0 {
		// etcd 3.x serving the v2 API writes a backend too: without a v3 key the
		// data may well be etcd2, and guessing etcd3 would drop the v2 keys.
		return Pair{}, fmt.Errorf("detected %s without a single v3 key, which may be etcd2 data served by etcd 3.x: write version.txt naming the version and storage that last served it (<version>/etcd2 or <version>/etcd3, e.g. 3.4.13/etcd2)", s)
	}
	// The backend records major.minor only.
	return Pair{Version: v, Storage: StorageEtcd3, PatchUnknown: true}, nil
}
