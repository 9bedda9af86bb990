// Package v2tov3 converts an etcd2 data dir (the v2 store, from its newest snapshot
// plus WAL replay) into etcd3 data: every v2 key becomes a v3 key whose create and mod
// revisions are its v2 createdIndex and modifiedIndex, TTL keys get leases with their
// remaining TTL, and a fresh member dir is written the way `etcdutl snapshot restore`
// writes one, so no v2 content remains for etcd 3.6+ to refuse.
package v2tov3

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/pkg/v3/pbutil"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v2store"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
)

// v2 store namespaces, as etcd names them: /0 holds membership, /1 the user keys.
const (
	clusterPrefix = "/0"
	keysPrefix    = "/1"
)

// LoadResult is a v2 store rebuilt from disk.
type LoadResult struct {
	// Store holds every node; the values of nodes unchanged since the snapshot are
	// empty in it and live in Values (see stream.go).
	Store  v2store.Store
	Values *valueSpool
	// SnapshotIndex is the raft index of the snapshot the store started from.
	SnapshotIndex uint64
	// AppliedIndex is the raft index of the last entry replayed.
	AppliedIndex uint64
}

// value returns the value of the key node last modified at modIndex, appended to
// buf[:0]: from the spool when the node still holds the snapshot's value, else
// stored (the node's own). Calls must come in modIndex order.
func (l *LoadResult) value(modIndex uint64, stored *string, buf []byte) ([]byte, error) {
	v, ok, err := l.Values.value(modIndex, buf)
	if err != nil || ok {
		return v, err
	}
	if stored == nil {
		return buf[:0], nil
	}
	return append(buf[:0], *stored...), nil
}

// Close removes the value spool.
func (l *LoadResult) Close() error { return l.Values.close() }

// LoadStore rebuilds the v2 store of dataDir the way etcd does at start: the newest
// snapshot that the WAL knows of, then every WAL entry after it applied in order.
// It only reads dataDir; the snapshot's values go to a new spool file at spoolPath,
// which Close removes.
func LoadStore(lg *zap.Logger, dataDir, spoolPath string) (*LoadResult, error) {
	return loadStore(lg, datadir.WALDir(dataDir), datadir.SnapDir(dataDir), spoolPath)
}

// loadStore is LoadStore with the WAL and snap dirs named (the WAL dir may be a
// separate --wal-dir).
func loadStore(lg *zap.Logger, walDir, snapDir, spoolPath string) (*LoadResult, error) {
	snaps, err := datadir.SnapFiles(snapDir)
	if err != nil {
		return nil, err
	}
	// The newest snapshot whose record the WAL holds, at or below the commit index
	// (what etcd's ValidSnapshotEntries + LoadNewestAvailable pick), found by
	// opening the WAL at each candidate instead of reading the WAL twice.
	for _, f := range snaps {
		ents, hs, err := readWAL(walDir, walpb.Snapshot{Index: f.Index, Term: f.Term})
		if errors.Is(err, wal.ErrSnapshotNotFound) || (err == nil && f.Index > hs.Commit) {
			continue
		}
		if err != nil {
			return nil, err
		}
		res, err := loadSnapshot(f, ents, walDir, spoolPath)
		if errors.Is(err, errBadSnapshot) {
			// etcd itself sets a broken snapshot aside and starts from an older
			// one; so does the conversion (without touching the file).
			lg.Warn("skipping unreadable v2 snapshot", zap.Error(err))
			continue
		}
		return res, err
	}
	// No usable snapshot: the whole WAL from the start.
	ents, _, err := readWAL(walDir, walpb.Snapshot{})
	if err != nil {
		return nil, err
	}
	res := &LoadResult{Store: v2store.New(clusterPrefix, keysPrefix)}
	return res, replay(res, ents, walDir)
}

var errBadSnapshot = errors.New("unreadable v2 snapshot")

func loadSnapshot(f datadir.SnapFile, ents []raftpb.Entry, walDir, spoolPath string) (*LoadResult, error) {
	sec, err := openSnapshot(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadSnapshot, err)
	}
	defer sec.f.Close()
	// Deferred after the Close, so it runs first: the CRC pass reads the file.
	defer func() { _ = sec.verify() }()
	keep, err := keysReadByReplay(ents, walDir)
	if err != nil {
		return nil, err
	}
	spool, err := createSpool(spoolPath)
	if err != nil {
		return nil, err
	}
	res := &LoadResult{Values: spool, SnapshotIndex: f.Index, AppliedIndex: f.Index}
	skeleton, storeIndex, err := decodeSkeleton(sec.data, spool, keep)
	if err == nil {
		err = spool.finish()
	}
	if crcErr := sec.verify(); crcErr != nil {
		res.Close()
		return nil, fmt.Errorf("%w: snapshot %s: %w", errBadSnapshot, f.Path, crcErr)
	}
	if err != nil {
		res.Close()
		return nil, fmt.Errorf("read v2 snapshot %s: %w", f.Path, err)
	}
	spool.storeIndex = storeIndex
	st := v2store.New(clusterPrefix, keysPrefix)
	if err := st.Recovery(skeleton); err != nil {
		res.Close()
		return nil, fmt.Errorf("recover v2 store from %s: %w", f.Path, err)
	}
	res.Store = st
	if err := replay(res, ents, walDir); err != nil {
		res.Close()
		return nil, err
	}
	return res, nil
}

// keysReadByReplay names the keys whose snapshot value the WAL replay reads: a
// compare on prevValue, or a TTL refresh that keeps the value.
func keysReadByReplay(ents []raftpb.Entry, walDir string) (map[string]bool, error) {
	keep := map[string]bool{}
	for _, e := range ents {
		r, err := v2Request(e, walDir)
		if err != nil {
			return nil, err
		}
		if r == nil {
			continue
		}
		if refresh, _ := pbutil.GetBool(r.Refresh); refresh || r.PrevValue != "" {
			keep[path.Clean(path.Join("/", r.Path))] = true
		}
	}
	return keep, nil
}

// v2Request decodes the v2 request an entry carries, or nil for other entries.
func v2Request(e raftpb.Entry, walDir string) (*pb.Request, error) {
	// Membership changes are none (the fresh member dir gets its own), and v3
	// requests other than V2 touch the v3 backend, not the v2 store.
	_, v2, err := datadir.DecodeRequest(e)
	if err != nil {
		return nil, fmt.Errorf("WAL %s: %w", walDir, err)
	}
	return v2, nil
}

// readWAL reads the WAL after the snapshot at, keeping the entries the v2 store
// replays (v2 requests and membership changes); the v3 requests a 3.x member
// logged are dropped as they are read, not held.
func readWAL(walDir string, at walpb.Snapshot) ([]raftpb.Entry, raftpb.HardState, error) {
	r, err := datadir.ReadWAL(walDir, at, func(e raftpb.Entry) bool {
		if e.Type == raftpb.EntryConfChange {
			return true
		}
		// An entry that does not decode is kept: the replay reports it.
		req, err := v2Request(e, walDir)
		return err != nil || req != nil
	})
	switch {
	case err != nil:
		return nil, r.HardState, fmt.Errorf("at snapshot index %d: %w", at.Index, err)
	case !r.SnapshotFound:
		return nil, r.HardState, fmt.Errorf("read WAL %s at snapshot index %d: %w", walDir, at.Index, wal.ErrSnapshotNotFound)
	}
	return r.Entries, r.HardState, nil
}

// replay applies the WAL entries after the snapshot to the store. Every entry
// counts, committed or not: a lone member commits its whole log when it restarts
// (etcdctl migrate replayed the same way).
func replay(res *LoadResult, ents []raftpb.Entry, walDir string) error {
	cl := membership.NewCluster(zap.NewNop())
	cl.SetStore(res.Store)
	for _, e := range ents {
		res.AppliedIndex = e.Index
		if e.Type == raftpb.EntryConfChange {
			if err := applyConfChange(cl, res.Store, e); err != nil {
				return err
			}
			continue
		}
		r, err := v2Request(e, walDir)
		if err != nil {
			return err
		}
		if r != nil {
			applyV2(res.Store, r)
		}
	}
	return nil
}

// applyConfChange applies a membership change to the store as etcd does (its
// membership.RaftCluster writes the member's raftAttributes under /0/members, or
// moves it to /0/removed_members): every such write takes a store index, so
// without them the keys written after would get indexes one lower per change than
// etcd gave them. Changes etcd refused (a member added twice, or removed when
// absent) are skipped as etcd skipped them.
func applyConfChange(cl *membership.RaftCluster, st v2store.Store, e raftpb.Entry) error {
	var cc raftpb.ConfChange
	if err := cc.Unmarshal(e.Data); err != nil {
		return fmt.Errorf("WAL entry %d: conf change: %w", e.Index, err)
	}
	id := types.ID(cc.NodeID)
	_, err := st.Get(membership.MemberStoreKey(id), false, false)
	exists := err == nil
	switch cc.Type {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		var m membership.Member
		if err := json.Unmarshal(cc.Context, &m); err != nil {
			return fmt.Errorf("WAL entry %d: member of a conf change: %w", e.Index, err)
		}
		if !exists {
			cl.AddMember(&m, membership.ApplyV2storeOnly)
		} else if cc.Type == raftpb.ConfChangeAddNode {
			// A learner promoted: etcd rewrites its raftAttributes.
			m.IsLearner = false
			return updateRaftAttributes(st, m)
		}
	case raftpb.ConfChangeRemoveNode:
		if exists {
			cl.RemoveMember(id, membership.ApplyV2storeOnly)
		}
	case raftpb.ConfChangeUpdateNode:
		var m membership.Member
		if err := json.Unmarshal(cc.Context, &m); err != nil {
			return fmt.Errorf("WAL entry %d: member of a conf change: %w", e.Index, err)
		}
		if exists {
			return updateRaftAttributes(st, m)
		}
	}
	return nil
}

// updateRaftAttributes rewrites a member's raftAttributes in the store, as etcd's
// membership package does for a peer URL update or a promotion.
func updateRaftAttributes(st v2store.Store, m membership.Member) error {
	b, err := json.Marshal(m.RaftAttributes)
	if err != nil {
		return err
	}
	_, err = st.Update(path.Join(membership.MemberStoreKey(m.ID), "raftAttributes"), string(b), v2store.TTLOptionSet{ExpireTime: v2store.Permanent})
	if err != nil {
		return fmt.Errorf("update member %s in the v2 store: %w", m.ID, err)
	}
	return nil
}

// applyV2 applies one v2 request to the store exactly as etcd's v2 applier did
// (etcd 3.5 etcdserver/apply_v2.go; 3.6 no longer ships it). Failed compare-and-swap
// and similar outcomes are part of the replay: etcd ignored them the same way.
func applyV2(st v2store.Store, r *pb.Request) {
	ttl := ttlOptions(r)
	switch r.Method {
	case http.MethodPost:
		_, _ = st.Create(r.Path, r.Dir, r.Val, true, ttl)
	case http.MethodPut:
		exists, existsSet := pbutil.GetBool(r.PrevExist)
		switch {
		case existsSet && exists && r.PrevIndex == 0 && r.PrevValue == "":
			_, _ = st.Update(r.Path, r.Val, ttl)
		case existsSet && exists:
			_, _ = st.CompareAndSwap(r.Path, r.PrevValue, r.PrevIndex, r.Val, ttl)
		case existsSet:
			_, _ = st.Create(r.Path, r.Dir, r.Val, false, ttl)
		case r.PrevIndex > 0 || r.PrevValue != "":
			_, _ = st.CompareAndSwap(r.Path, r.PrevValue, r.PrevIndex, r.Val, ttl)
		default:
			_, _ = st.Set(r.Path, r.Dir, r.Val, ttl)
		}
	case http.MethodDelete:
		if r.PrevIndex > 0 || r.PrevValue != "" {
			_, _ = st.CompareAndDelete(r.Path, r.PrevValue, r.PrevIndex)
		} else {
			_, _ = st.Delete(r.Path, r.Dir, r.Recursive)
		}
	case "SYNC":
		st.DeleteExpiredKeys(time.Unix(0, r.Time))
	}
	// QGET reads only.
}

func ttlOptions(r *pb.Request) v2store.TTLOptionSet {
	refresh, _ := pbutil.GetBool(r.Refresh)
	opts := v2store.TTLOptionSet{Refresh: refresh}
	if r.Expiration != 0 {
		opts.ExpireTime = time.Unix(0, r.Expiration)
	}
	return opts
}
