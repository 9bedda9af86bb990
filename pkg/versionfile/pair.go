// Package versionfile owns the "<version>/<storage>" pair that version.txt records,
// its parsing and its durable I/O. What the data itself records is pkg/datadir's.
package versionfile

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/go-version"
)

// Storage is the etcd API whose keyspace holds the data: etcd2 (the v2 store) or
// etcd3 (the mvcc backend).
type Storage string

const (
	StorageEtcd2 Storage = "etcd2"
	StorageEtcd3 Storage = "etcd3"
)

// ParseStorage accepts exactly "etcd2" or "etcd3".
func ParseStorage(s string) (Storage, error) {
	switch Storage(s) {
	case StorageEtcd2, StorageEtcd3:
		return Storage(s), nil
	}
	return "", fmt.Errorf("unknown storage %q: use etcd2 or etcd3", s)
}

// Pair is what version.txt records: the etcd version that last wrote the data and
// the storage the data is in.
type Pair struct {
	Version *version.Version
	Storage Storage
	// PatchUnknown: the data tells only the minor (its backend records major.minor),
	// so Version is major.minor.0 and the patch that wrote it is not known. Such a
	// pair is planned from, never written to version.txt.
	PatchUnknown bool
}

// strictVersion is major.minor.patch with plain decimal numbers: what etcd release
// versions look like, and all version.txt has ever held.
var strictVersion = regexp.MustCompile(`^(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})$`)

// ParseVersion parses an etcd release version such as 3.5.35.
func ParseVersion(s string) (*version.Version, error) {
	if !strictVersion.MatchString(s) {
		return nil, fmt.Errorf("invalid etcd version %q: want major.minor.patch, e.g. 3.5.35", s)
	}
	v, err := version.NewVersion(s)
	if err != nil {
		return nil, fmt.Errorf("invalid etcd version %q: %w", s, err)
	}
	return v, nil
}

// MustVersion is ParseVersion for constants in code and tests.
func MustVersion(s string) *version.Version {
	v, err := ParseVersion(s)
	if err != nil {
		panic(err)
	}
	return v
}

// ParsePair parses "<major.minor.patch>/<etcd2|etcd3>". Surrounding whitespace (a
// trailing newline) is ignored; anything else is an error that quotes the input.
func ParsePair(s string) (Pair, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Pair{}, fmt.Errorf("empty version: want <major.minor.patch>/<etcd2|etcd3>, e.g. 3.5.35/etcd3")
	}
	ver, stor, ok := strings.Cut(s, "/")
	if !ok {
		return Pair{}, fmt.Errorf("invalid version pair %q: missing /<etcd2|etcd3>, e.g. 3.5.35/etcd3", s)
	}
	v, err := ParseVersion(ver)
	if err != nil {
		return Pair{}, fmt.Errorf("invalid version pair %q: %w", s, err)
	}
	st, err := ParseStorage(stor)
	if err != nil {
		return Pair{}, fmt.Errorf("invalid version pair %q: %w", s, err)
	}
	p := Pair{Version: v, Storage: st}
	if err := p.validate(); err != nil {
		return Pair{}, err
	}
	return p, nil
}

// MustPair is ParsePair for constants in code and tests.
func MustPair(s string) Pair {
	p, err := ParsePair(s)
	if err != nil {
		panic(err)
	}
	return p
}

func (p Pair) validate() error {
	if p.Version == nil {
		return fmt.Errorf("invalid version pair: no version")
	}
	if p.Major() < 2 {
		return fmt.Errorf("invalid version pair %q: etcd versions start at 2.0.0", p.String())
	}
	if p.PatchUnknown {
		return fmt.Errorf("invalid version pair %q: version.txt records an exact version", p.String())
	}
	if p.Storage == StorageEtcd3 && p.Major() < 3 {
		return fmt.Errorf("invalid version pair %q: etcd %s has no etcd3 storage (it starts with 3.0.0)", p.String(), p.Version)
	}
	return nil
}

func (p Pair) String() string {
	if p.Version == nil {
		return "<none>"
	}
	if p.PatchUnknown {
		return fmt.Sprintf("%s.x/%s", MinorString(p.Version), p.Storage)
	}
	return fmt.Sprintf("%s/%s", p.Version.String(), p.Storage)
}

// Major returns the major version number.
func (p Pair) Major() int { return Major(p.Version) }

// Minor returns the minor version number.
func (p Pair) Minor() int { return Minor(p.Version) }

// MinorString is "major.minor", e.g. "3.5".
func (p Pair) MinorString() string { return MinorString(p.Version) }

// Major returns v's major version number.
func Major(v *version.Version) int { return v.Segments()[0] }

// Minor returns v's minor version number.
func Minor(v *version.Version) int { return v.Segments()[1] }

// MinorString is "major.minor" of v, e.g. "3.5".
func MinorString(v *version.Version) string {
	return fmt.Sprintf("%d.%d", Major(v), Minor(v))
}

// LastMinor2 is etcd 2's last minor: the minor after 2.3 is 3.0.
const LastMinor2 = 3

// NextMinor is the minor that follows v's in etcd's release series, as
// "major.minor": 2.2 -> 2.3 -> 3.0 -> 3.1.
func NextMinor(v *version.Version) string {
	if Major(v) == 2 && Minor(v) >= LastMinor2 {
		return "3.0"
	}
	return fmt.Sprintf("%d.%d", Major(v), Minor(v)+1)
}

// CompareMinor orders a and b by major.minor only: -1, 0 or 1.
func CompareMinor(a, b *version.Version) int {
	switch {
	case Major(a) != Major(b):
		return cmpInt(Major(a), Major(b))
	default:
		return cmpInt(Minor(a), Minor(b))
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Equal reports whether both pairs name the same version and storage. A pair whose
// patch is unknown equals only another such pair of its minor.
func (p Pair) Equal(o Pair) bool {
	return p.Storage == o.Storage && p.Version != nil && o.Version != nil && p.PatchUnknown == o.PatchUnknown && p.Version.Equal(o.Version)
}
