// Package rollback takes data one step down: one minor through etcd's downgrade
// API (DowngradeMinor, 3.6+), 3.5 -> 3.4 by a snapshot restored with the older
// etcdctl (RestoreSnapshot), and etcd3 -> etcd2 offline (ToEtcd2): the live v3
// keyspace is read from the bolt backend and written as a v2 store snapshot in a
// fresh member dir that an etcd serving the v2 API starts on. Unlike the Kubernetes
// tool it keeps resource versions: each key's modifiedIndex is its mod_revision and
// its createdIndex its create_revision.
package rollback
