package datadir

import (
	bolt "go.etcd.io/bbolt"

	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
)

// Offline is what an etcd3 data dir's backend records about its cluster beyond the
// keyspace: the members and the auth state.
type Offline struct {
	Members []v3backend.Member
	Auth    v3backend.Auth
}

// ReadOffline reads the members and auth state of dataDir's v3 backend read-only.
func ReadOffline(dataDir string) (Offline, error) {
	db, err := v3backend.OpenReadOnly(BackendPath(dataDir))
	if err != nil {
		return Offline{}, err
	}
	defer db.Close()
	var o Offline
	err = db.View(func(tx *bolt.Tx) error {
		o.Auth = v3backend.ReadAuth(tx)
		o.Members, err = v3backend.ReadMembers(tx)
		return err
	})
	return o, err
}
