package v2tov3

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v2store"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
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
	// Members are the cluster members the store records (/0/members): the
	// membership etcd 3.5 and older go by (their backend's members bucket may
	// keep a member a snapshot restore replaced).
	Members []v3backend.Member
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
	c, err := v2Content(loaded.Store, prefix)
	c.Members = storeMembers(loaded)
	return c, err
}

func v2Content(st v2store.Store, prefix string) (V2Content, error) {
	var c V2Content
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

// storeMembers reads the members of a v2 store with etcd's own attribute types:
// /0/members/<id>/raftAttributes (peer URLs) and attributes (name).
func storeMembers(loaded *LoadResult) []v3backend.Member {
	ev, err := loaded.Store.Get(storeMembersPrefix, true, true)
	if err != nil || ev.Node == nil {
		return nil
	}
	// The snapshot's values wait in the spool, read in modifiedIndex order.
	var attrs []*v2store.NodeExtern
	for _, n := range ev.Node.Nodes {
		attrs = append(attrs, n.Nodes...)
	}
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].ModifiedIndex < attrs[j].ModifiedIndex })
	var out []v3backend.Member
	for _, n := range ev.Node.Nodes {
		if id, err := types.IDFromString(path.Base(n.Key)); err == nil {
			out = append(out, v3backend.Member{ID: id})
		}
	}
	byID := map[types.ID]*v3backend.Member{}
	for i := range out {
		byID[out[i].ID] = &out[i]
	}
	for _, a := range attrs {
		id, err := types.IDFromString(path.Base(path.Dir(a.Key)))
		m := byID[id]
		if err != nil || m == nil {
			continue
		}
		v, err := loaded.value(a.ModifiedIndex, a.Value, nil)
		if err != nil {
			continue
		}
		switch path.Base(a.Key) {
		case "raftAttributes":
			var ra membership.RaftAttributes
			if json.Unmarshal(v, &ra) == nil {
				m.PeerURLs, m.Learner = ra.PeerURLs, ra.IsLearner
			}
		case "attributes":
			var at membership.Attributes
			if json.Unmarshal(v, &at) == nil {
				m.Name = at.Name
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// storeMembersPrefix is where a v2 store keeps the members (etcd's StoreMembersPrefix).
const storeMembersPrefix = "/0/members"
