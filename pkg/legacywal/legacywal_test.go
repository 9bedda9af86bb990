package legacywal

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
)

// writeWAL writes a WAL with etcd's wal package: padded frames and a
// preallocated zero tail.
func writeWAL(t *testing.T, dir string) []raftpb.Entry {
	t.Helper()
	w, err := wal.Create(zap.NewNop(), dir, []byte("metadata"))
	if err != nil {
		t.Fatal(err)
	}
	var ents []raftpb.Entry
	for i := uint64(1); i <= 50; i++ {
		// Data lengths that are not multiples of 8, so that most frames pad.
		ents = append(ents, raftpb.Entry{Term: 1, Index: i, Data: bytes.Repeat([]byte{byte(i)}, int(i%13))})
	}
	if err := w.Save(raftpb.HardState{Term: 1, Commit: 50}, ents); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return ents
}

func TestUnpad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	ents := writeWAL(t, dir)
	files, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(files) != 1 {
		t.Fatalf("%d WAL files", len(files))
	}
	before, _ := os.ReadFile(files[0])
	padded := 0
	if _, err := Frames(bytes.NewReader(before), func([]byte) {}); err != nil {
		t.Fatal(err)
	}
	for off := 0; off+8 <= len(before); {
		l := binary.LittleEndian.Uint64(before[off:])
		if l == 0 {
			break
		}
		if l&padFlag != 0 {
			padded++
		}
		off += 8 + int(l&sizeMask) + int((l>>56)&0x7)*int(l>>63)
	}
	if padded == 0 {
		t.Fatal("etcd's wal package wrote no padded frame: the test proves nothing")
	}

	res, err := Unpad(dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 1 || res.Records < 53 { // crc, metadata, snapshot, 50 entries, state
		t.Fatalf("Unpad = %+v", res)
	}
	after, _ := os.ReadFile(files[0])
	// Every frame unpadded, the file ending at the last record.
	off, n := 0, 0
	for off < len(after) {
		l := binary.LittleEndian.Uint64(after[off:])
		if l == 0 || l>>56 != 0 {
			t.Fatalf("frame %d at %d: length field %#x", n, off, l)
		}
		var rec walpb.Record
		if err := rec.Unmarshal(after[off+8 : off+8+int(l)]); err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		off += 8 + int(l)
		n++
	}
	if off != len(after) || n != res.Records || len(after) >= len(before) {
		t.Fatalf("rewritten file: %d bytes, %d frames ending at %d (was %d bytes)", len(after), n, off, len(before))
	}
	// etcd's own reader reads it as it read the original.
	w, err := wal.OpenForRead(zap.NewNop(), dir, walpb.Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	md, st, got, err := w.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if string(md) != "metadata" || st.Commit != 50 || !reflect.DeepEqual(got, ents) {
		t.Fatalf("ReadAll after Unpad: metadata %q, commit %d, %d entries", md, st.Commit, len(got))
	}
	// A second pass changes nothing.
	if _, err := Unpad(dir); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(files[0]); !bytes.Equal(again, after) {
		t.Fatal("a second Unpad changed the file")
	}
}

func TestFramesCutShort(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	writeWAL(t, dir)
	files, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	b, _ := os.ReadFile(files[0])
	first := 8 + int(binary.LittleEndian.Uint64(b)&sizeMask)
	_, err := Frames(bytes.NewReader(b[:first+8+3]), func([]byte) {})
	if err == nil || !strings.Contains(err.Error(), "frame 1:") {
		t.Fatalf("a frame cut short: err = %v", err)
	}
	if _, err := Unpad(t.TempDir()); err == nil || !strings.Contains(err.Error(), "holds no .wal file") {
		t.Fatalf("Unpad of an empty dir: %v", err)
	}
}
