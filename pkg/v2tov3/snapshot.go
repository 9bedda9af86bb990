package v2tov3

import (
	"hash/crc32"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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
