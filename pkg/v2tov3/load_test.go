package v2tov3

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v2store"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
)

func boolPtr(b bool) *bool { return &b }

// randomRequests returns v2 requests of every kind the replay handles, on a small
// set of keys so that they hit each other: sets with and without TTLs, updates,
// compare-and-swaps on the value and on the index, TTL refreshes, deletes (also
// recursive and compare-and-delete), in-order creates and a SYNC that expires keys.
// cur is a store the requests are applied to as they are made, so compares match.
func randomRequests(rng *rand.Rand, n int, now time.Time) []*pb.Request {
	cur := v2store.New(clusterPrefix, keysPrefix)
	values := []string{"", "plain", `{"kind":"Pod","note":"quote \" backslash \\ tab \t"}`, "ünïcödé ☃ \u2028", "\x00\x01 binary\xff", "<html>&amp;</html>"}
	key := func() string {
		return fmt.Sprintf("%s/registry/d%d/k%d", keysPrefix, rng.Intn(3), rng.Intn(8))
	}
	var out []*pb.Request
	for len(out) < n {
		r := &pb.Request{Path: key(), Val: values[rng.Intn(len(values))] + fmt.Sprint(rng.Intn(3))}
		if rng.Intn(4) == 0 {
			r.Expiration = now.Add(time.Duration(rng.Intn(7200)-100) * time.Second).UnixNano()
		}
		ev, err := cur.Get(r.Path, false, false)
		exists := err == nil && !ev.Node.Dir
		switch op := rng.Intn(10); {
		case op < 3:
			r.Method = http.MethodPut
		case op == 3 && exists:
			r.Method, r.PrevExist = http.MethodPut, boolPtr(true)
		case op == 4 && exists:
			r.Method, r.PrevValue = http.MethodPut, *ev.Node.Value
		case op == 5 && exists:
			r.Method, r.PrevIndex = http.MethodPut, ev.Node.ModifiedIndex
		case op == 6 && exists:
			r.Method, r.PrevExist, r.Refresh, r.Val = http.MethodPut, boolPtr(true), boolPtr(true), ""
			r.Expiration = now.Add(time.Duration(600+rng.Intn(600)) * time.Second).UnixNano()
		case op == 7 && exists:
			r = &pb.Request{Method: http.MethodDelete, Path: r.Path}
			if rng.Intn(2) == 0 {
				r.PrevValue = *ev.Node.Value
			}
		case op == 8:
			r.Method, r.Path = http.MethodPost, fmt.Sprintf("%s/registry/queue%d", keysPrefix, rng.Intn(2))
		case op == 9 && rng.Intn(8) == 0:
			r = &pb.Request{Method: http.MethodDelete, Path: fmt.Sprintf("%s/registry/d%d", keysPrefix, rng.Intn(3)), Dir: true, Recursive: true}
		case op == 9 && rng.Intn(4) == 0:
			r = &pb.Request{Method: "SYNC", Time: now.UnixNano()}
		default:
			continue
		}
		applyV2(cur, r)
		out = append(out, r)
	}
	return out
}

// writeEtcd2Dir writes a member dir as etcd 3.4 would for reqs: a WAL holding every
// request as a bare pb.Request entry, and a v2 snapshot of the store after the
// first snapAt of them, recorded in the WAL.
func writeEtcd2Dir(t *testing.T, dataDir string, reqs []*pb.Request, snapAt int) {
	t.Helper()
	lg := zap.NewNop()
	walDir, snapDir := filepath.Join(dataDir, "member", "wal"), filepath.Join(dataDir, "member", "snap")
	if err := os.MkdirAll(snapDir, 0o700); err != nil {
		t.Fatal(err)
	}
	w, err := wal.Create(lg, walDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	st := v2store.New(clusterPrefix, keysPrefix)
	var ents []raftpb.Entry
	for i, r := range reqs {
		data, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		ents = append(ents, raftpb.Entry{Term: 1, Index: uint64(i + 1), Type: raftpb.EntryNormal, Data: data})
		if i < snapAt {
			applyV2(st, r)
		}
	}
	hs := raftpb.HardState{Term: 1, Commit: uint64(len(ents))}
	if err := w.Save(hs, ents[:snapAt]); err != nil {
		t.Fatal(err)
	}
	if snapAt > 0 {
		data, err := st.Save()
		if err != nil {
			t.Fatal(err)
		}
		cs := raftpb.ConfState{Voters: []uint64{1}}
		meta := raftpb.SnapshotMetadata{Index: uint64(snapAt), Term: 1, ConfState: cs}
		if err := snap.New(lg, snapDir).SaveSnap(raftpb.Snapshot{Data: data, Metadata: meta}); err != nil {
			t.Fatal(err)
		}
		if err := w.SaveSnapshot(walpb.Snapshot{Index: meta.Index, Term: meta.Term, ConfState: &cs}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Save(hs, ents[snapAt:]); err != nil {
		t.Fatal(err)
	}
}

type flatNode struct {
	Value             string
	Created, Modified uint64
	Expiration        string
	Dir               bool
}

// flatten lists every node under /1 with its value resolved through value.
func flatten(t *testing.T, st v2store.Store, value func(*v2store.NodeExtern) string) map[string]flatNode {
	t.Helper()
	out := map[string]flatNode{}
	ev, err := st.Get(keysPrefix, true, true)
	if err != nil {
		return out // no /1 at all
	}
	var leaves []*v2store.NodeExtern
	var walk func(n *v2store.NodeExtern)
	walk = func(n *v2store.NodeExtern) {
		f := flatNode{Created: n.CreatedIndex, Modified: n.ModifiedIndex, Dir: n.Dir}
		if n.Expiration != nil {
			f.Expiration = n.Expiration.UTC().Format(time.RFC3339Nano)
		}
		out[n.Key] = f
		for _, c := range n.Nodes {
			walk(c)
		}
		if !n.Dir {
			leaves = append(leaves, n)
		}
	}
	walk(ev.Node)
	// Values come in modifiedIndex order, as writeBackend asks for them.
	sort.Slice(leaves, func(i, j int) bool { return leaves[i].ModifiedIndex < leaves[j].ModifiedIndex })
	for _, n := range leaves {
		f := out[n.Key]
		f.Value = value(n)
		out[n.Key] = f
	}
	return out
}

// TestLoadStoreMatchesFullReplay checks the streaming load (skeleton + value spool
// + WAL replay) against the v2 store built by applying every request in memory,
// for random histories cut by a snapshot at random points.
func TestLoadStoreMatchesFullReplay(t *testing.T) {
	now := time.Now()
	for seed := int64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewSource(seed))
		reqs := randomRequests(rng, 200+rng.Intn(200), now)
		snapAt := rng.Intn(len(reqs) + 1)
		if seed%5 == 0 {
			snapAt = 0 // no snapshot: the whole WAL
		}
		t.Run(fmt.Sprintf("seed%d-snap%d", seed, snapAt), func(t *testing.T) {
			dataDir := t.TempDir()
			writeEtcd2Dir(t, dataDir, reqs, snapAt)
			// What etcd holds after a restart: the snapshot's store (through its JSON,
			// which turns invalid UTF-8 into U+FFFD) plus the requests after it.
			want := v2store.New(clusterPrefix, keysPrefix)
			for _, r := range reqs[:snapAt] {
				applyV2(want, r)
			}
			data, err := want.Save()
			if err != nil {
				t.Fatal(err)
			}
			want = v2store.New(clusterPrefix, keysPrefix)
			if err := want.Recovery(data); err != nil {
				t.Fatal(err)
			}
			for _, r := range reqs[snapAt:] {
				applyV2(want, r)
			}
			loaded, err := LoadStore(zap.NewNop(), dataDir, filepath.Join(t.TempDir(), "values"))
			if err != nil {
				t.Fatal(err)
			}
			defer loaded.Close()
			if loaded.AppliedIndex != uint64(len(reqs)) || loaded.SnapshotIndex != uint64(snapAt) {
				t.Fatalf("applied %d from snapshot %d, want %d from %d", loaded.AppliedIndex, loaded.SnapshotIndex, len(reqs), snapAt)
			}
			var buf []byte
			got := flatten(t, loaded.Store, func(n *v2store.NodeExtern) string {
				v, err := loaded.value(n.ModifiedIndex, n.Value, buf)
				if err != nil {
					t.Fatal(err)
				}
				return string(v)
			})
			exp := flatten(t, want, func(n *v2store.NodeExtern) string { return *n.Value })
			if len(got) != len(exp) {
				t.Errorf("%d nodes, want %d", len(got), len(exp))
			}
			for k, w := range exp {
				if g, ok := got[k]; !ok || g != w {
					t.Errorf("%s: got %+v (present %v), want %+v", k, g, ok, w)
				}
			}
		})
	}
}

// TestUnquoteMatchesEncodingJSON: the fast string decoder gives what json.Unmarshal
// gives, for what encoding/json writes and for escapes it does not write.
func TestUnquoteMatchesEncodingJSON(t *testing.T) {
	raws := []string{``, `plain`, `\"q\"`, `\\`, `\/`, `\b\f\n\r\t`, `\u00e9\u2028\u0000`, `\ud83d\ude00`, `\ud800`, `\udc00x`, "caf\xc3\xa9", "bad\xff", `\x`, `a\`}
	for _, s := range []string{"ünï ☃", "\x00\x1f\x7f", "<>&\u2028\u2029", "\xff\xfe", `{"a":"b\"c"}`} {
		b, _ := json.Marshal(s)
		raws = append(raws, string(b[1:len(b)-1]))
	}
	for _, raw := range raws {
		got, gotErr := unquote(nil, []byte(raw))
		var want string
		wantErr := json.Unmarshal([]byte(`"`+raw+`"`), &want)
		if (gotErr != nil) != (wantErr != nil) || (gotErr == nil && string(got) != want) {
			t.Errorf("unquote(%q) = %q, %v; json.Unmarshal gives %q, %v", raw, got, gotErr, want, wantErr)
		}
	}
}

func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`plain`, `\"q\\`, `\u00e9\ud83d\ude00`, "x\xffy", `\ud800\u0041`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, gotErr := unquote(nil, raw)
		quoted := append(append([]byte{'"'}, raw...), '"')
		var want string
		wantErr := json.Unmarshal(quoted, &want)
		if wantErr == nil && (gotErr != nil || string(got) != want) {
			t.Fatalf("unquote(%q) = %q, %v; json.Unmarshal gives %q", raw, got, gotErr, want)
		}
	})
}

// TestConvertStopsWhenCanceled: a conversion whose context ends (a signal) stops
// and leaves the etcd2 data dir as it was, with no work dir behind.
func TestConvertStopsWhenCanceled(t *testing.T) {
	dataDir := t.TempDir()
	reqs := randomRequests(rand.New(rand.NewSource(7)), 300, time.Now())
	writeEtcd2Dir(t, dataDir, reqs, 150)
	before := treeOf(t, dataDir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Convert(ctx, Options{DataDir: dataDir, Now: time.Now, Name: "m", PeerURLs: []string{"http://localhost:2380"},
		InitialCluster: "m=http://localhost:2380", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Convert with a canceled context: %v, want context.Canceled", err)
	}
	if after := treeOf(t, dataDir); after != before {
		t.Fatalf("the data dir changed:\nbefore %s\nafter  %s", before, after)
	}
}

// treeOf lists every path under dir with its size.
func treeOf(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s:%d ", strings.TrimPrefix(p, dir), info.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestCorruptSnapshotSkipped: a v2 snapshot whose JSON still parses but whose CRC
// no longer matches (one byte of a value changed) is set aside as etcd does, and
// the store is rebuilt from the WAL instead: the CRC check that runs beside the
// decoding must reject it.
func TestCorruptSnapshotSkipped(t *testing.T) {
	reqs := randomRequests(rand.New(rand.NewSource(7)), 300, time.Now())
	dataDir := t.TempDir()
	writeEtcd2Dir(t, dataDir, reqs, 200)
	snaps, err := filepath.Glob(filepath.Join(dataDir, "member", "snap", "*.snap"))
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots %v, %v; want one", snaps, err)
	}
	b, err := os.ReadFile(snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(`"value":"`))
	for i >= 0 && !isAlnum(b[i+9]) {
		j := bytes.Index(b[i+1:], []byte(`"value":"`))
		if j < 0 {
			t.Fatal("no alphanumeric value in the snapshot")
		}
		i += 1 + j
	}
	if b[i+9] == 'a' {
		b[i+9] = 'b'
	} else {
		b[i+9] = 'a'
	}
	if err := os.WriteFile(snaps[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadStore(zap.NewNop(), dataDir, filepath.Join(t.TempDir(), "values"))
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	if loaded.SnapshotIndex != 0 || loaded.AppliedIndex != uint64(len(reqs)) {
		t.Fatalf("loaded from snapshot %d up to %d, want the whole WAL (0 up to %d)", loaded.SnapshotIndex, loaded.AppliedIndex, len(reqs))
	}
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
