package v2tov3

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sort"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
)

// The v2 store of a large etcd2 data dir is mostly values: 100k Kubernetes objects
// are ~130 MiB of JSON, and unmarshaling the snapshot holds the file, the decoded
// store and the key walk at once (etcdctl migrate peaks at several times the data).
// The conversion instead streams the snapshot once: every non-empty value goes to a
// spool file in the work dir, and v2store.Recovery gets a "skeleton" of the store
// (paths, indexes, expiry times, empty values) that is a small fraction of the size.
// The WAL tail then replays on the skeleton with etcd's own v2 store code. A key's
// value is still the spooled one exactly when its modifiedIndex is at or below the
// snapshot's store index: every v2 write after the snapshot gives the node a new,
// higher modifiedIndex. The two WAL operations that read an old value (a
// compare-and-swap/delete on prevValue, and a TTL refresh that keeps the value) have
// their keys kept with real values in the skeleton.

// snapshotSection is where the v2 store JSON of a .snap file lies.
type snapshotSection struct {
	f        *os.File
	data     *io.SectionReader
	metadata raftpb.SnapshotMetadata
	crc      <-chan error // the CRC check's result (verify)
	crcErr   error
}

// openSnapshot checks a .snap file as etcd's snap.Read does (snappb envelope with a
// CRC-32C over a raftpb.Snapshot) while streaming it, and returns the section that
// holds the store JSON. The caller closes f.
func openSnapshot(sf datadir.SnapFile) (*snapshotSection, error) {
	f, err := os.Open(sf.Path)
	if err != nil {
		return nil, err
	}
	s, err := locateSnapshot(f, sf)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("snapshot %s: %w", sf.Path, err)
	}
	return s, nil
}

func locateSnapshot(f *os.File, sf datadir.SnapFile) (*snapshotSection, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var crc uint64
	var payloadOff, payloadLen int64 = -1, 0
	err = protoFields(io.NewSectionReader(f, 0, st.Size()), func(num uint64, v uint64, off, n int64) error {
		switch num {
		case 1:
			crc = v
		case 2:
			payloadOff, payloadLen = off, n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if payloadLen == 0 || crc == 0 {
		return nil, errors.New("the snapshot is empty")
	}
	s := &snapshotSection{f: f}
	var metaOff, metaLen int64 = -1, 0
	err = protoFields(io.NewSectionReader(f, payloadOff, payloadLen), func(num uint64, _ uint64, off, n int64) error {
		switch num {
		case 1:
			s.data = io.NewSectionReader(f, payloadOff+off, n)
		case 2:
			metaOff, metaLen = payloadOff+off, n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if metaOff >= 0 {
		meta := make([]byte, metaLen)
		if _, err := f.ReadAt(meta, metaOff); err != nil {
			return nil, err
		}
		if err := s.metadata.Unmarshal(meta); err != nil {
			return nil, err
		}
	}
	if s.data == nil {
		return nil, errors.New("the snapshot holds no v2 store")
	}
	if s.metadata.Index != sf.Index || s.metadata.Term != sf.Term {
		return nil, fmt.Errorf("holds index %d term %d, not what its name says", s.metadata.Index, s.metadata.Term)
	}
	// The CRC pass reads the whole payload (1.5 GiB at 1M keys): it runs on
	// another core while the store is decoded from the same pages, and the
	// decoded store is used only once it passed (verify).
	ch := make(chan error, 1)
	go func() { ch <- checkCRC(f, payloadOff, payloadLen, crc) }()
	s.crc = ch
	return s, nil
}

func checkCRC(f *os.File, off, n int64, want uint64) error {
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, bufio.NewReaderSize(io.NewSectionReader(f, off, n), 1<<20)); err != nil {
		return err
	}
	if got := h.Sum32(); uint64(got) != want {
		return fmt.Errorf("corrupt: CRC %08x, recorded %08x", got, want)
	}
	return nil
}

// verify waits for the CRC check: nil once the payload matched its CRC.
func (s *snapshotSection) verify() error {
	if s.crc == nil {
		return s.crcErr
	}
	s.crcErr, s.crc = <-s.crc, nil
	return s.crcErr
}

// protoFields walks the top-level fields of a protobuf message in r reading only
// tags and lengths, not length-delimited payloads: fn gets varints as v, and the
// offset and length of bytes fields.
func protoFields(r *io.SectionReader, fn func(num, v uint64, off, n int64) error) error {
	br := bufio.NewReaderSize(r, 4096)
	var pos int64
	readUvarint := func() (uint64, error) {
		v, err := binary.ReadUvarint(countingByteReader{br, &pos})
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return v, err
	}
	for pos < r.Size() {
		tag, err := readUvarint()
		if err != nil {
			return fmt.Errorf("protobuf tag at byte %d: %w", pos, err)
		}
		num, typ := tag>>3, tag&7
		switch typ {
		case 0: // varint
			v, err := readUvarint()
			if err != nil {
				return fmt.Errorf("protobuf field %d: %w", num, err)
			}
			if err := fn(num, v, 0, 0); err != nil {
				return err
			}
		case 2: // length-delimited
			n, err := readUvarint()
			if err != nil {
				return fmt.Errorf("protobuf field %d: %w", num, err)
			}
			if n > uint64(r.Size()-pos) {
				return fmt.Errorf("protobuf field %d: %d bytes past the end", num, n)
			}
			if err := fn(num, 0, pos, int64(n)); err != nil {
				return err
			}
			// Skip the payload without reading it (the store JSON is the
			// whole file).
			pos += int64(n)
			br.Reset(io.NewSectionReader(r, pos, r.Size()-pos))
		default:
			return fmt.Errorf("protobuf field %d: unexpected wire type %d", num, typ)
		}
	}
	return nil
}

type countingByteReader struct {
	r   *bufio.Reader
	pos *int64
}

func (c countingByteReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		*c.pos++
	}
	return b, err
}

// spoolRef is where one snapshot value lies in the spool file.
type spoolRef struct {
	modIndex uint64
	off      int64
	n        uint32
	crc      uint32 // CRC-32C of the value as decoded from the snapshot
}

// valueSpool holds the snapshot's values on disk, looked up by modifiedIndex.
type valueSpool struct {
	f    *os.File
	w    *bufio.Writer
	size int64
	refs []spoolRef // sorted by modIndex once written
	// storeIndex is the v2 store index of the snapshot: nodes modified later hold
	// their own values.
	storeIndex uint64
	next       int // lookup cursor: lookups come in modIndex order
}

func createSpool(path string) (*valueSpool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create value spool: %w", err)
	}
	return &valueSpool{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (s *valueSpool) add(modIndex uint64, v []byte) error {
	if _, err := s.w.Write(v); err != nil {
		return fmt.Errorf("write value spool %s: %w", s.f.Name(), err)
	}
	s.refs = append(s.refs, spoolRef{modIndex: modIndex, off: s.size, n: uint32(len(v)), crc: crc32.Checksum(v, castagnoli)})
	s.size += int64(len(v))
	return nil
}

func (s *valueSpool) finish() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("write value spool %s: %w", s.f.Name(), err)
	}
	sort.Slice(s.refs, func(i, j int) bool { return s.refs[i].modIndex < s.refs[j].modIndex })
	return nil
}

// value returns the spooled value of the node last modified at modIndex, appended
// to buf[:0], or ok false when the node's value lives in the store. Calls must come
// in increasing modIndex order.
func (s *valueSpool) value(modIndex uint64, buf []byte) (v []byte, ok bool, err error) {
	if s == nil || modIndex > s.storeIndex {
		return nil, false, nil
	}
	for s.next < len(s.refs) && s.refs[s.next].modIndex < modIndex {
		s.next++
	}
	if s.next == len(s.refs) || s.refs[s.next].modIndex != modIndex {
		return nil, false, nil
	}
	r := s.refs[s.next]
	if cap(buf) < int(r.n) {
		buf = make([]byte, r.n)
	}
	buf = buf[:r.n]
	if _, err := s.f.ReadAt(buf, r.off); err != nil {
		return nil, false, fmt.Errorf("read value spool %s: %w", s.f.Name(), err)
	}
	if crc32.Checksum(buf, castagnoli) != r.crc {
		return nil, false, fmt.Errorf("value spool %s: the value of modifiedIndex %d changed on disk", s.f.Name(), modIndex)
	}
	return buf, true, nil
}

// close removes the spool; it may be called more than once.
func (s *valueSpool) close() error {
	if s == nil || s.f == nil {
		return nil
	}
	err := s.f.Close()
	if rerr := os.Remove(s.f.Name()); rerr != nil && err == nil {
		err = rerr
	}
	s.f = nil
	return err
}

// zeroTime is how encoding/json writes a zero time.Time.
const zeroTime = "0001-01-01T00:00:00Z"

// skeletonDecoder streams the store JSON into the skeleton JSON and the spool.
type skeletonDecoder struct {
	j     *jsonScanner
	out   *bytes.Buffer
	spool *valueSpool
	keep  map[string]bool // keys whose values stay in the skeleton
	value []byte          // scratch for decoded values
}

// decodeSkeleton reads the store JSON from r and returns the skeleton JSON for
// v2store.Recovery (Root, CurrentIndex and CurrentVersion; the watcher history and
// stats are left out) with the store index it holds.
func decodeSkeleton(r io.Reader, spool *valueSpool, keep map[string]bool) ([]byte, uint64, error) {
	d := &skeletonDecoder{j: newJSONScanner(r), out: &bytes.Buffer{}, spool: spool, keep: keep}
	var index uint64
	err := d.object(func(name string) error {
		switch name {
		case "Root":
			d.field(name)
			return d.node()
		case "CurrentIndex", "CurrentVersion":
			v, err := d.j.uint()
			if err != nil {
				return err
			}
			if name == "CurrentIndex" {
				index = v
			}
			d.field(name)
			fmt.Fprint(d.out, v)
			return nil
		}
		return d.j.skip()
	})
	if err != nil {
		return nil, 0, err
	}
	return d.out.Bytes(), index, nil
}

// object reads an object, calling fn with the scanner at each member's value, and
// writes the braces of the matching output object.
func (d *skeletonDecoder) object(fn func(name string) error) error {
	if err := d.j.expect('{'); err != nil {
		return err
	}
	d.out.WriteByte('{')
	first := true
	for {
		if end, err := d.j.consumeIf('}'); end || err != nil {
			d.out.WriteByte('}')
			return err
		}
		if !first {
			if err := d.j.expect(','); err != nil {
				return err
			}
		}
		first = false
		raw, err := d.j.rawString()
		if err != nil {
			return err
		}
		name := string(raw)
		if err := d.j.expect(':'); err != nil {
			return err
		}
		if err := fn(name); err != nil {
			return err
		}
	}
}

// field writes a member name, with the comma when a member came before.
func (d *skeletonDecoder) field(name string) {
	if b := d.out.Bytes(); b[len(b)-1] != '{' {
		d.out.WriteByte(',')
	}
	d.out.WriteByte('"')
	d.out.WriteString(name)
	d.out.WriteString(`":`)
}

// node copies one store node, spooling its value unless its key is kept.
func (d *skeletonDecoder) node() error {
	var path string
	var havePath, spooled bool
	var modIndex uint64
	err := d.object(func(name string) error {
		switch name {
		case "Path", "ExpireTime":
			raw, err := d.j.rawString()
			if err != nil {
				return err
			}
			if name == "ExpireTime" && string(raw) == zeroTime {
				return nil // the default; most nodes never expire
			}
			if name == "Path" {
				p, err := unquote(nil, raw)
				if err != nil {
					return d.j.errorf("%v", err)
				}
				path, havePath = string(p), true
			}
			d.field(name)
			d.out.WriteByte('"')
			d.out.Write(raw)
			d.out.WriteByte('"')
		case "CreatedIndex", "ModifiedIndex":
			v, err := d.j.uint()
			if err != nil {
				return err
			}
			if name == "ModifiedIndex" {
				modIndex = v
			}
			d.field(name)
			fmt.Fprint(d.out, v)
		case "Value":
			raw, err := d.j.rawString()
			if err != nil {
				return err
			}
			if len(raw) == 0 {
				return nil // "" is the default
			}
			if !havePath {
				return d.j.errorf("a node's Value comes before its Path")
			}
			if d.keep[path] {
				d.field(name)
				d.out.WriteByte('"')
				d.out.Write(raw)
				d.out.WriteByte('"')
				return nil
			}
			if d.value, err = unquote(d.value[:0], raw); err != nil {
				return d.j.errorf("value of %q: %v", path, err)
			}
			spooled = true
		case "Children":
			if ok, err := d.j.consumeIf('n'); ok || err != nil {
				if err != nil {
					return err
				}
				return d.expectRest("ull")
			}
			d.field(name)
			return d.object(func(child string) error {
				d.field(child)
				return d.node()
			})
		default:
			return d.j.skip()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if spooled {
		// ModifiedIndex precedes Value in etcd's encoding, but the node is complete
		// only now.
		return d.spool.add(modIndex, d.value)
	}
	return nil
}

func (d *skeletonDecoder) expectRest(rest string) error {
	for i := 0; i < len(rest); i++ {
		c, err := d.j.readByte()
		if err != nil {
			return err
		}
		if c != rest[i] {
			return d.j.errorf("invalid literal")
		}
	}
	return nil
}
