package v2tov3

import (
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
)

// snapFile is a member/snap/<term>-<index>.snap file; the name tells both.
type snapFile struct {
	path        string
	term, index uint64
}

// snapFiles lists the v2 snapshot files of snapDir, newest first. Unlike etcd's
// Snapshotter it never deletes anything: the conversion only reads the etcd2 data.
func snapFiles(snapDir string) ([]snapFile, error) {
	names, err := filepath.Glob(filepath.Join(snapDir, "*.snap"))
	if err != nil {
		return nil, err
	}
	var out []snapFile
	for _, n := range names {
		t, i, ok := strings.Cut(strings.TrimSuffix(filepath.Base(n), ".snap"), "-")
		term, err1 := strconv.ParseUint(t, 16, 64)
		index, err2 := strconv.ParseUint(i, 16, 64)
		if ok && err1 == nil && err2 == nil {
			out = append(out, snapFile{path: n, term: term, index: index})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].index > out[b].index })
	return out, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// readSnapshot reads a .snap file as etcd's snap.Read does (snappb envelope with a
// CRC-32C over a raftpb.Snapshot) but without copying the payload: the v2 store
// JSON it returns is a slice of the file's bytes. snap.Read holds three copies of
// it at once, which at 100k Kubernetes objects is most of the peak memory.
func readSnapshot(f snapFile) (*raftpb.Snapshot, error) {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return nil, err
	}
	var crc uint64
	var payload []byte
	if err := fields(b, func(num protowire.Number, v uint64, bs []byte) error {
		switch num {
		case 1:
			crc = v
		case 2:
			payload = bs
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", f.path, err)
	}
	if len(payload) == 0 || crc == 0 {
		return nil, fmt.Errorf("snapshot %s is empty", f.path)
	}
	if got := crc32.Update(0, castagnoli, payload); uint64(got) != crc {
		return nil, fmt.Errorf("snapshot %s is corrupt: CRC %08x, recorded %08x", f.path, got, crc)
	}
	snap := &raftpb.Snapshot{}
	err = fields(payload, func(num protowire.Number, _ uint64, bs []byte) error {
		switch num {
		case 1:
			snap.Data = bs
		case 2:
			return snap.Metadata.Unmarshal(bs)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", f.path, err)
	}
	if snap.Metadata.Index != f.index || snap.Metadata.Term != f.term {
		return nil, fmt.Errorf("snapshot %s holds index %d term %d, not what its name says", f.path, snap.Metadata.Index, snap.Metadata.Term)
	}
	return snap, nil
}

// fields walks the top-level fields of a protobuf message: varints and
// length-delimited fields (sub-slices, not copies) go to fn, others are skipped.
func fields(b []byte, fn func(num protowire.Number, v uint64, bs []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v uint64
		var bs []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			bs, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, v, bs); err != nil {
			return err
		}
	}
	return nil
}
