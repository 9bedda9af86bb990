package migrate

import (
	"fmt"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// checkEmptyDirTarget refuses, for an empty data dir, an etcd2 target whose etcd
// has no v2 API (3.6+): there is nothing to migrate, but version.txt would name a
// storage that etcd cannot serve (it exits: flag provided but not defined:
// -enable-v2). Data dirs with data get the planner's refusal of the same move.
func checkEmptyDirTarget(target versionfile.Pair) error {
	if target.Storage != versionfile.StorageEtcd2 || etcdversion.For(target.Version).V2API {
		return nil
	}
	return fmt.Errorf("empty data dir -> %s: etcd %s serves no v2 API (etcd2 storage ends with 3.5): target an etcd 3.5 or older, or set TARGET_STORAGE=etcd3", target, target.Version)
}
