package datadir

import (
	bolt "go.etcd.io/bbolt"

	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
)

// Offline is what an etcd3 data dir's backend records about its cluster beyond the
// keyspace: the members, the auth state and the alarms.
type Offline struct {
	Members []v3backend.Member
	Auth    v3backend.Auth
	// Alarms are the active alarms (NOSPACE, CORRUPT), as ReadAlarms lists them.
	Alarms []string
}

// ReadOffline reads the members, auth state and alarms of dataDir's v3 backend
// read-only.
func ReadOffline(dataDir string) (Offline, error) {
	db, err := v3backend.OpenReadOnly(BackendPath(dataDir))
	if err != nil {
		return Offline{}, err
	}
	defer db.Close()
	var o Offline
	err = db.View(func(tx *bolt.Tx) error {
		o.Auth = v3backend.ReadAuth(tx)
		if o.Alarms, err = v3backend.ReadAlarms(tx); err != nil {
			return err
		}
		o.Members, err = v3backend.ReadMembers(tx)
		return err
	})
	return o, err
}
