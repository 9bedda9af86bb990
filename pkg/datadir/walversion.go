package datadir

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/pkg/v3/pbutil"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
)

// walClusterVersion is the last cluster version the WAL of memberDir sets after the
// newest snapshot etcd would start from ("" when it sets none). etcd replays those
// entries at start, so a step whose etcd raised the cluster version and was killed
// before its backend committed it (the backend commits every 100 ms) leaves the new
// version here only; an older etcd started on that data replays it and refuses to
// run ("invalid downgrade"). Measured with a 3.5.35 killed right after its /version
// said 3.5.0: the backend still said 3.4.0 and etcd 3.4.13 then exited.
//
// A run inspects the data several times before its first step (lock, plan,
// preflight), and reading every WAL segment costs about 0.3 s per 64 MiB: the
// answer is kept for as long as the WAL and snap dirs list the same files with
// the same sizes and modification times.
func walClusterVersion(memberDir string) (string, error) {
	key := dirsSignature(filepath.Join(memberDir, "wal"), filepath.Join(memberDir, "snap"))
	walVersions.Lock()
	v, ok := walVersions.m[key]
	walVersions.Unlock()
	if ok && key != "" {
		return v, nil
	}
	v, err := readWALClusterVersion(memberDir)
	if err == nil && key != "" {
		walVersions.Lock()
		walVersions.m[key] = v
		walVersions.Unlock()
	}
	return v, err
}

var walVersions = struct {
	sync.Mutex
	m map[string]string
}{m: map[string]string{}}

// dirsSignature names each file of dirs with its size and modification time, or
// is "" if a dir cannot be read.
func dirsSignature(dirs ...string) string {
	var b strings.Builder
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			return ""
		}
		fmt.Fprintf(&b, "%s\x00", d)
		for _, e := range entries {
			fi, err := e.Info()
			if err != nil {
				return ""
			}
			fmt.Fprintf(&b, "%s %d %d\x00", e.Name(), fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String()
}

// readWALClusterVersion reads the WAL once, from the segment of the snapshot etcd
// starts from: the newest .snap file whose record the WAL holds at or below the
// last commit (what wal.ValidSnapshotEntries and the snapshotter pick together;
// ValidSnapshotEntries alone reads every segment first, doubling the read).
func readWALClusterVersion(memberDir string) (string, error) {
	walDir := filepath.Join(memberDir, "wal")
	if !wal.Exist(walDir) {
		return "", nil
	}
	snaps, err := SnapFiles(filepath.Join(memberDir, "snap"))
	if err != nil {
		return "", err
	}
	keep := func(e raftpb.Entry) bool { return setClusterVersion(e) != "" }
	for _, f := range snaps {
		r, err := ReadWAL(walDir, walpb.Snapshot{Index: f.Index, Term: f.Term}, keep)
		if errors.Is(err, wal.ErrSnapshotMismatch) {
			continue // a file etcd would not pick: the WAL records another term there
		}
		if err != nil {
			return "", err
		}
		if !r.SnapshotFound || f.Index > r.HardState.Commit {
			continue
		}
		return lastClusterVersion(r), nil
	}
	r, err := ReadWAL(walDir, walpb.Snapshot{}, keep)
	if err != nil {
		return "", err
	}
	return lastClusterVersion(r), nil
}

func lastClusterVersion(r WALEntries) string {
	if len(r.Entries) == 0 {
		return ""
	}
	return setClusterVersion(r.Entries[len(r.Entries)-1])
}

// walSegmentsFrom opens, in order, the WAL segments from the last one whose first
// index is at or below index, as etcd selects them (segment names are
// <seq>-<first index>.wal; the sequence must have no gap).
func walSegmentsFrom(walDir string, index uint64) ([]*os.File, error) {
	names, err := filepath.Glob(filepath.Join(walDir, "*.wal"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	from := 0
	// Names etcd does not parse, it skips; so does this.
	var seqs []uint64
	valid := names[:0]
	for _, n := range names {
		var seq, first uint64
		if _, err := fmt.Sscanf(filepath.Base(n), "%016x-%016x.wal", &seq, &first); err != nil {
			continue
		}
		if first <= index {
			from = len(valid)
		}
		valid, seqs = append(valid, n), append(seqs, seq)
	}
	names = valid
	for i := from + 1; i < len(names); i++ {
		if seqs[i] != seqs[i-1]+1 {
			return nil, fmt.Errorf("read WAL %s: segment %s does not follow %s", walDir, filepath.Base(names[i]), filepath.Base(names[i-1]))
		}
	}
	var files []*os.File
	for _, n := range names[from:] {
		f, err := os.Open(n)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("read WAL %s: %w", walDir, err)
		}
		files = append(files, f)
	}
	return files, nil
}

// setClusterVersion is the version an entry sets the cluster version to: a v3
// ClusterVersionSet (3.5+), or the v2 PUT /0/version that 3.4 and 3.5 write.
func setClusterVersion(e raftpb.Entry) string {
	if !bytes.Contains(e.Data, clusterVersionSetTag) && !bytes.Contains(e.Data, v2VersionPath) {
		// Most entries are puts: decoding each (its key and value copied) cost
		// more than the rest of the WAL read.
		return ""
	}
	v3, v2, err := DecodeRequest(e)
	if err != nil {
		return ""
	}
	if v3 != nil && v3.ClusterVersionSet != nil {
		return v3.ClusterVersionSet.Ver
	}
	if v2 != nil && v2.Method == "PUT" && v2.Path == "/0/version" {
		return v2.Val
	}
	return ""
}

var (
	// clusterVersionSetTag is InternalRaftRequest's cluster_version_set field
	// (number 1300, length-delimited) as it is marshaled: (1300<<3|2) as a varint.
	clusterVersionSetTag = []byte{0xa2, 0x51}
	// v2VersionPath is where etcd 2.x-3.5 record the cluster version in the v2 store.
	v2VersionPath = []byte("/0/version")
)

// DecodeRequest decodes a normal WAL entry's request: v3 is the request etcd 3.x
// logs (nil for a bare v2 request), v2 the v2 store request (v3's V2, or the bare
// pb.Request etcd 2.x and 3.0-3.5 log). A membership change or an empty entry is
// neither; an entry that is neither decodes to an error.
func DecodeRequest(e raftpb.Entry) (v3 *pb.InternalRaftRequest, v2 *pb.Request, err error) {
	if e.Type != raftpb.EntryNormal || len(e.Data) == 0 {
		return nil, nil, nil
	}
	var rr pb.InternalRaftRequest
	if pbutil.MaybeUnmarshal(&rr, e.Data) {
		return &rr, rr.V2, nil
	}
	var r pb.Request
	if err := r.Unmarshal(e.Data); err != nil {
		return nil, nil, fmt.Errorf("entry %d: neither a v3 nor a v2 request: %w", e.Index, err)
	}
	return nil, &r, nil
}
