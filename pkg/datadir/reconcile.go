package datadir

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// CheckAgainst refuses a version.txt whose pair the data contradicts, naming both
// (see Reconcile).
func (s State) CheckAgainst(p versionfile.Pair) error {
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
func (s State) Reconcile(p versionfile.Pair) (versionfile.Pair, error) {
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
	if p.Storage == versionfile.StorageEtcd3 && s.Storage == versionfile.StorageEtcd2 {
		return versionfile.Pair{}, contradiction("etcd3 data needs the v3 backend member/snap/db")
	}
	if s.Storage == versionfile.StorageEtcd2 {
		return p, nil
	}
	if p.Storage == versionfile.StorageEtcd2 && s.HasV3Keys {
		return versionfile.Pair{}, fmt.Errorf("version.txt says %s but the data is %s: its v3 backend holds key revisions, so the data is etcd3; fix version.txt to <version>/etcd3 naming %s, or remove it to let migrate detect the state", p, s, wrote)
	}
	minor, known := s.MinorFromData()
	if !known {
		// etcd 3.4 records its cluster version once it has decided it, 3.5+ also
		// the term at its first apply: only an older etcd, or a 3.4 that never
		// got that far, leaves neither.
		if etcdversion.For(p.Version).TermInBackend {
			return versionfile.Pair{}, contradiction("an etcd 3.5 or newer would have recorded its term in the backend")
		}
		return p, nil
	}
	dv, err := version.NewVersion(minor + ".0")
	if err != nil {
		return versionfile.Pair{}, contradiction("the backend's recorded version cannot be parsed")
	}
	c := versionfile.CompareMinor(dv, p.Version)
	if c == 0 {
		return p, nil
	}
	oneStep := versionfile.NextMinor(p.Version) == minor || versionfile.NextMinor(dv) == p.MinorString()
	if p.Storage == versionfile.StorageEtcd2 {
		// etcd2 data converts from its v2 store alone, whatever served it last;
		// a newer etcd than version.txt says beyond one minor is a wrong file.
		if c > 0 && !oneStep {
			return versionfile.Pair{}, contradiction("the data was written by a newer etcd than version.txt says")
		}
		return p, nil
	}
	if !oneStep {
		if c > 0 {
			return versionfile.Pair{}, contradiction("the data was written by a newer etcd than version.txt says")
		}
		return versionfile.Pair{}, contradiction("the data records an older version than version.txt, beyond the one minor a rollback step cut short leaves")
	}
	return versionfile.Pair{Version: dv, Storage: versionfile.StorageEtcd3, PatchUnknown: true}, nil
}

// ErrUnversionedEtcd2 marks etcd2 data written by etcd 2.x (no v3 backend) without
// version.txt: only etcd 2.x writes that, and the seed took it as its oldest 2.x.
var ErrUnversionedEtcd2 = errors.New("etcd2 data without version.txt")

type unversionedEtcd2 struct{ s State }

func (e unversionedEtcd2) Error() string {
	return fmt.Sprintf("detected %s, which does not record the etcd version that wrote it: write version.txt naming it, e.g. echo 2.2.5/etcd2 > version.txt, or bundle an etcd 2.x (such data is then taken as written by the oldest bundled 2.x)", e.s)
}

func (unversionedEtcd2) Is(target error) bool { return target == ErrUnversionedEtcd2 }

// FromState turns a detected state into the pair version.txt would hold, for a data
// dir that has none. It refuses when the data does not tell the version exactly.
func FromState(s State) (versionfile.Pair, error) {
	switch {
	case s.Storage == versionfile.StorageEtcd2:
		return versionfile.Pair{}, unversionedEtcd2{s}
	case s.StorageVersion == "" && s.ClusterVersion == "":
		return versionfile.Pair{}, fmt.Errorf("detected %s, which does not record the etcd version exactly: write version.txt naming the version that last served it, e.g. echo 3.4.13/etcd3 > version.txt", s)
	}
	minor, ok := s.MinorFromData()
	v, err := version.NewVersion(minor + ".0")
	if !ok || err != nil {
		return versionfile.Pair{}, fmt.Errorf("detected %s, whose recorded version cannot be parsed: write version.txt naming the version that last served it, e.g. echo 3.5.35/etcd3 > version.txt", s)
	}
	if !s.HasV3Keys {
		// etcd 3.x serving the v2 API writes a backend too: without a v3 key the
		// data may well be etcd2, and guessing etcd3 would drop the v2 keys.
		return versionfile.Pair{}, fmt.Errorf("detected %s without a single v3 key, which may be etcd2 data served by etcd 3.x: write version.txt naming the version and storage that last served it (<version>/etcd2 or <version>/etcd3, e.g. 3.4.13/etcd2)", s)
	}
	// The backend records major.minor only.
	return versionfile.Pair{Version: v, Storage: versionfile.StorageEtcd3, PatchUnknown: true}, nil
}
