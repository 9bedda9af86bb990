package migrate

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdversion"
	"github.com/etcd-migrate/etcd-migrate/pkg/v2tov3"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// checkNoV2Content refuses a version.txt that says etcd3 for data that is etcd2 in
// all but name: a v3 backend without a single key (etcd 3.x serving the v2 API
// creates one) next to a v2 store that holds keys. Planned as etcd3, its keys would
// be left behind in the v2 store. Only data etcd 3.5 or older may have served (the
// last with the v2 API) is read, and only when the backend has no key, so the cost
// stays with data that has no v3 keyspace to migrate.
func checkNoV2Content(dataDir string, p versionfile.Pair, s datadir.State) error {
	if p.Storage != versionfile.StorageEtcd3 || s.Storage != versionfile.StorageEtcd3 || s.HasV3Keys {
		return nil
	}
	if minor, known := s.MinorFromData(); known && !etcdversion.Of(minor+".0").V2API {
		return nil
	}
	content, err := v2tov3.ReadV2Content(zap.NewNop(), dataDir, "", "/")
	if err != nil {
		return fmt.Errorf("version.txt says %s and the v3 backend of %s holds no key: %w", p, dataDir, err)
	}
	if n := content.Keys + content.Dirs; n > 0 {
		return fmt.Errorf("version.txt says %s but the data is etcd2: its v2 store holds %d keys and directories and its v3 backend none; fix version.txt to %s/etcd2 (the etcd that served it, with etcd2 storage)", p, n, p.Version)
	}
	return nil
}
