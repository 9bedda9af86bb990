package v2tov3

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v2store"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
)

// V2Content is what the v2 store of an etcd3 data dir holds besides etcd's own
// membership records: the v2 keys that `etcdctl migrate` (the Kubernetes etcd2 ->
// etcd3 tool) copied into the v3 keyspace but left in place, or that v2 clients
// wrote since. etcd 3.6+ refuses to start on it ("detected disallowed custom content
// in v2store").
type V2Content struct {
	// MetaOnly: nothing but membership; etcd 3.6+ accepts the data as it is
	// (etcd's own membership.IsMetaStoreOnly).
	MetaOnly bool
	// Keys counts the v2 keys and Dirs the directories; OutsidePrefix the keys
	// not under the Kubernetes prefix, FirstOutside the first of them in key order.
	Keys, Dirs, OutsidePrefix int
	FirstOutside              string
	// Top are the names of the top-level nodes of the v2 keyspace ("/registry"),
	// hidden ones included: what a recursive v2 delete of everything names.
	Top []string
	// Auth: the store holds v2 auth users or roles (/2), which the v2 keys API
	// cannot delete.
	Auth bool
	// Members counts the cluster members the store records (/0/members).
	Members int
}

// ReadV2Content rebuilds the v2 store of the etcd3 data dir dataDir offline (the
// newest v2 snapshot plus the WAL after it, as etcd does at start) and reports
// what it holds besides membership; prefix is the Kubernetes key prefix. It only
// reads dataDir (and walDir, its WAL dir: "" for the one inside it); the loader's value spool goes to a temp dir, removed before it
// returns.
func ReadV2Content(lg *zap.Logger, dataDir, walDir, prefix string) (V2Content, error) {
	if walDir == "" {
		walDir = datadir.WALDir(dataDir)
	}
	tmp, err := os.MkdirTemp("", "etcd-migrate-v2content-*")
	if err != nil {
		return V2Content{}, fmt.Errorf("v2 store of %s: %w", dataDir, err)
	}
	defer os.RemoveAll(tmp)
	loaded, err := loadStore(lg, walDir, datadir.SnapDir(dataDir), filepath.Join(tmp, "values"))
	if err != nil {
		return V2Content{}, fmt.Errorf("v2 store of %s: %w", dataDir, err)
	}
	defer loaded.Close()
	return v2Content(loaded.Store, prefix)
}

func v2Content(st v2store.Store, prefix string) (V2Content, error) {
	var c V2Content
	if ev, err := st.Get("/0/members", false, false); err == nil && ev.Node != nil {
		c.Members = len(ev.Node.Nodes)
	}
	metaOnly, err := membership.IsMetaStoreOnly(st)
	if err != nil {
		return c, fmt.Errorf("v2 store: %w", err)
	}
	c.MetaOnly = metaOnly
	if metaOnly {
		return c, nil
	}
	ev, err := getKeys(st)
	if err != nil {
		return c, err
	}
	under := strings.TrimSuffix(prefix, "/") + "/"
	c.Dirs = walkKeys(ev.Node, func(n *v2store.NodeExtern) {
		c.Keys++
		if k := strings.TrimPrefix(n.Key, keysPrefix); !strings.HasPrefix(k, under) {
			c.OutsidePrefix++
			if c.FirstOutside == "" || k < c.FirstOutside {
				c.FirstOutside = k
			}
		}
	})
	for _, n := range ev.Node.Nodes {
		c.Top = append(c.Top, strings.TrimPrefix(n.Key, keysPrefix))
	}
	sort.Strings(c.Top)
	// v2 auth keeps its users and roles below /2 (etcd's storePermsPrefix).
	if perms, err := st.Get("/2", true, false); err == nil {
		for _, n := range perms.Node.Nodes {
			if n.Nodes.Len() > 0 {
				c.Auth = true
			}
		}
	}
	return c, nil
}

// Check refuses v2 content that dropping could lose: v2 auth (etcd 3.6+ has no v2
// auth), or keys outside the Kubernetes prefix (a v2 client such as flannel may
// still use them) unless drop says the operator accepts dropping them. Keys under
// the prefix are the leftovers of `etcdctl migrate`: a Kubernetes API server on
// etcd3 storage reads only the v3 keyspace.
func (c V2Content) Check(prefix string, drop bool) error {
	if c.MetaOnly {
		return nil
	}
	if c.Auth {
		return fmt.Errorf("the v2 store holds v2 auth users or roles, which etcd 3.6+ refuses and migrate cannot drop through the v2 keys API: disable and delete them with etcd 3.5 (ETCDCTL_API=2 etcdctl auth disable; user/role remove), or target 3.5")
	}
	if c.OutsidePrefix > 0 && !drop {
		return fmt.Errorf("the v2 store holds %d v2 keys outside %s (first: %s), which etcd 3.6+ refuses to start with and a v2 client may still use: copy what is needed into the v3 keyspace, then rerun with DROP_V2_CONTENT=true (--drop-v2-content) to drop every v2 key at the 3.5 step (the backup keeps them), or target 3.5", c.OutsidePrefix, prefix, c.FirstOutside)
	}
	return nil
}
