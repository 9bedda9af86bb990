package datadir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/pkg/v3/pbutil"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
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

func readWALClusterVersion(memberDir string) (string, error) {
	walDir, snapDir := filepath.Join(memberDir, "wal"), filepath.Join(memberDir, "snap")
	lg := zap.NewNop()
	if !wal.Exist(walDir) {
		return "", nil
	}
	snaps, err := wal.ValidSnapshotEntries(lg, walDir)
	if err != nil {
		return "", fmt.Errorf("read WAL %s: %w", walDir, err)
	}
	// The newest snapshot the WAL records whose file is there, as etcd picks it.
	at := walpb.Snapshot{}
	for i := len(snaps) - 1; i >= 0; i-- {
		name := fmt.Sprintf("%016x-%016x.snap", snaps[i].Term, snaps[i].Index)
		if _, err := os.Stat(filepath.Join(snapDir, name)); err == nil {
			at = snaps[i]
			break
		}
	}
	return scanWALClusterVersion(walDir, at.Index)
}

// scanWALClusterVersion decodes the WAL from the segment holding the entry after
// index on, one record at a time (etcd's wal.ReadAll would hold every entry after
// the snapshot: 640 MiB for 10,000 entries of 64 KiB values), and returns the
// version the newest cluster version entry after index sets. A later entry at an
// index replaces the earlier ones from there on, as in ReadAll.
func scanWALClusterVersion(walDir string, index uint64) (string, error) {
	files, err := walSegmentsFrom(walDir, index)
	if err != nil {
		return "", err
	}
	var readers []fileutil.FileReader
	for _, f := range files {
		defer f.Close()
		readers = append(readers, fileutil.NewFileReader(f))
	}
	dec := wal.NewDecoder(readers...)
	sets := map[uint64]string{} // entry index -> the version it sets
	for {
		var rec walpb.Record
		err := dec.Decode(&rec)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break // the end, or a torn last record etcd drops too
		}
		if err != nil {
			return "", fmt.Errorf("read WAL %s: %w", walDir, err)
		}
		switch rec.Type {
		case wal.CrcType:
			dec.UpdateCRC(rec.Crc)
		case wal.EntryType:
			var e raftpb.Entry
			if err := e.Unmarshal(rec.Data); err != nil {
				return "", fmt.Errorf("read WAL %s: entry: %w", walDir, err)
			}
			if e.Index <= index {
				continue
			}
			for i := range sets {
				if i >= e.Index {
					delete(sets, i)
				}
			}
			if v := setClusterVersion(e); v != "" {
				sets[e.Index] = v
			}
		}
	}
	last, at := "", uint64(0)
	for i, v := range sets {
		if i >= at {
			last, at = v, i
		}
	}
	return last, nil
}

// walSegmentsFrom opens, in order, the WAL segments from the last one that starts
// at or before the entry after index (segment names are <seq>-<first index>.wal).
func walSegmentsFrom(walDir string, index uint64) ([]*os.File, error) {
	names, err := filepath.Glob(filepath.Join(walDir, "*.wal"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	from := 0
	for i, n := range names {
		var seq, first uint64
		if _, err := fmt.Sscanf(filepath.Base(n), "%016x-%016x.wal", &seq, &first); err == nil && first <= index+1 {
			from = i
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
	if e.Type != raftpb.EntryNormal || len(e.Data) == 0 {
		return ""
	}
	var rr pb.InternalRaftRequest
	var v2 *pb.Request
	if pbutil.MaybeUnmarshal(&rr, e.Data) {
		if rr.ClusterVersionSet != nil {
			return rr.ClusterVersionSet.Ver
		}
		v2 = rr.V2
	} else {
		var r pb.Request
		if r.Unmarshal(e.Data) != nil {
			return ""
		}
		v2 = &r
	}
	if v2 != nil && v2.Method == "PUT" && v2.Path == "/0/version" {
		return v2.Val
	}
	return ""
}
