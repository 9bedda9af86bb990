package datadir

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
)

// TestReadWALAsReadAll: on a WAL of several segments, with a snapshot record and
// entries a new term rewrote, ReadWAL keeping every entry returns what etcd's
// ReadAll returns, and keeping some returns exactly those of ReadAll's.
func TestReadWALAsReadAll(t *testing.T) {
	defer func(n int64) { wal.SegmentSizeBytes = n }(wal.SegmentSizeBytes)
	wal.SegmentSizeBytes = 4096
	dir := t.TempDir()
	lg := zap.NewNop()
	w, err := wal.Create(lg, dir, []byte("metadata"))
	if err != nil {
		t.Fatal(err)
	}
	ents := func(term, from, to uint64) []raftpb.Entry {
		var es []raftpb.Entry
		for i := from; i <= to; i++ {
			es = append(es, raftpb.Entry{Term: term, Index: i, Data: []byte(fmt.Sprintf("entry %d of term %d %01000d", i, term, 0))})
		}
		return es
	}
	// Saved a few at a time: a segment is cut at the end of a Save past its size.
	for i := uint64(1); i <= 40; i += 5 {
		if err := w.Save(raftpb.HardState{Term: 1, Commit: i + 4}, ents(1, i, i+4)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.SaveSnapshot(walpb.Snapshot{Index: 20, Term: 1, ConfState: &raftpb.ConfState{Voters: []uint64{1}}}); err != nil {
		t.Fatal(err)
	}
	// A new leader rewrites the uncommitted tail from 35 on.
	if err := w.Save(raftpb.HardState{Term: 2, Commit: 60}, ents(2, 35, 60)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.wal")); len(segs) < 3 {
		t.Fatalf("%d WAL segments, want several: %v", len(segs), segs)
	}

	for _, at := range []walpb.Snapshot{{}, {Index: 20, Term: 1}} {
		r, err := wal.OpenForRead(lg, dir, at)
		if err != nil {
			t.Fatal(err)
		}
		_, hs, want, err := r.ReadAll()
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadWAL(dir, at, func(raftpb.Entry) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		if !got.SnapshotFound || !reflect.DeepEqual(got.HardState, hs) || !reflect.DeepEqual(got.Entries, want) {
			t.Fatalf("at %+v: found %v, hard state %+v, %d entries; ReadAll: %+v, %d entries", at, got.SnapshotFound, got.HardState, len(got.Entries), hs, len(want))
		}
		even, err := ReadWAL(dir, at, func(e raftpb.Entry) bool { return e.Index%2 == 0 })
		if err != nil {
			t.Fatal(err)
		}
		var wantEven []raftpb.Entry
		for _, e := range want {
			if e.Index%2 == 0 {
				wantEven = append(wantEven, e)
			}
		}
		if !reflect.DeepEqual(even.Entries, wantEven) {
			t.Fatalf("at %+v: kept %d even entries, want %d", at, len(even.Entries), len(wantEven))
		}
		// The rewrite took: entries 35 to 60 are term 2's, none missing.
		if n := len(want); uint64(n) != 60-at.Index || want[n-26].Index != 35 || want[n-26].Term != 2 || want[n-27].Term != 1 {
			t.Fatalf("at %+v: ReadAll returned %d entries, from %d", at, n, want[0].Index)
		}
	}
	// A snapshot the WAL does not record.
	if got, err := ReadWAL(dir, walpb.Snapshot{Index: 30, Term: 1}, func(raftpb.Entry) bool { return true }); err != nil || got.SnapshotFound {
		t.Fatalf("snapshot at 30: found %v, %v; want not found", got.SnapshotFound, err)
	}
	if _, err := ReadWAL(dir, walpb.Snapshot{Index: 20, Term: 3}, func(raftpb.Entry) bool { return true }); !errors.Is(err, wal.ErrSnapshotMismatch) {
		t.Fatalf("snapshot at 20 of term 3: %v, want ErrSnapshotMismatch", err)
	}
}
