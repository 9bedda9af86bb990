// Package legacywal writes a member's write-ahead log in the frame format etcd 2.x
// reads. Since 3.0 etcd's wal package pads every record to 8 bytes and marks it in
// the top byte of the frame's length; 2.x reads that length as a huge size and
// panics. Their frame is the same record unpadded: a little-endian 64-bit
// length, then the marshalled walpb.Record (type, CRC-32C chained over the data,
// data). The records themselves are as etcd's wal package wrote them, byte for
// byte; only the framing changes. etcd 2.2 also reads a zero-filled preallocated
// tail as a record (walpb: crc mismatch), so a rewritten file ends at its last
// record. etcd 3.0 and newer read both framings, so the result stays readable by
// every etcd and by this project's own WAL reader.
package legacywal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"

	"github.com/etcd-migrate/etcd-migrate/pkg/durable"
)

const (
	frameSizeBytes = 8
	// padFlag marks a padded frame; the next three bits of the top byte hold the
	// padding (etcd 3.1+'s encoder).
	padFlag  = uint64(1) << 63
	sizeMask = ^(uint64(0xff) << 56)
)

// Result says what Unpad rewrote.
type Result struct {
	Files, Records int
}

// Unpad rewrites every WAL file in walDir in the unpadded frame format, each ending
// at its last record, durably (temp file, fsync, rename, fsync of the dir). It
// reads the result back with etcd's own decoder, which checks the CRC chain, and
// fails unless it yields the same records as the original.
func Unpad(walDir string) (Result, error) {
	var res Result
	names, err := walFiles(walDir)
	if err != nil {
		return res, err
	}
	before, err := decodeAll(walDir, names)
	if err != nil {
		return res, fmt.Errorf("read WAL %s before rewriting it: %w", walDir, err)
	}
	for _, name := range names {
		n, err := unpadFile(filepath.Join(walDir, name))
		if err != nil {
			return res, err
		}
		res.Files++
		res.Records += n
	}
	after, err := decodeAll(walDir, names)
	if err != nil {
		return res, fmt.Errorf("read back the rewritten WAL %s: %w", walDir, err)
	}
	if len(after) != len(before) || res.Records != len(before) {
		return res, fmt.Errorf("rewritten WAL %s holds %d records (%d framed), the original %d", walDir, len(after), res.Records, len(before))
	}
	for i := range before {
		if before[i].Type != after[i].Type || before[i].Crc != after[i].Crc || string(before[i].Data) != string(after[i].Data) {
			return res, fmt.Errorf("rewritten WAL %s: record %d differs from the original", walDir, i)
		}
	}
	return res, nil
}

// unpadFile rewrites one WAL file and returns how many records it holds.
func unpadFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	var out []byte
	n, err := Frames(bufio.NewReaderSize(f, 1<<20), func(rec []byte) {
		out = binary.LittleEndian.AppendUint64(out, uint64(len(rec)))
		out = append(out, rec...)
	})
	if err != nil {
		return 0, fmt.Errorf("WAL file %s: %w", path, err)
	}
	if err := durable.WriteFile(path, out, fi.Mode().Perm()); err != nil {
		return 0, fmt.Errorf("rewrite WAL file %s: %w", path, err)
	}
	return n, nil
}

// Frames calls fn with each record of a WAL file, padded or not, in order, up to
// the end of the file or of its records (a zero length: the preallocated tail).
// A frame cut short is an error: the files this package rewrites are complete.
func Frames(r io.Reader, fn func(rec []byte)) (int, error) {
	var hdr [frameSizeBytes]byte
	var buf []byte
	n := 0
	for {
		if _, err := io.ReadFull(r, hdr[:]); errors.Is(err, io.EOF) {
			return n, nil
		} else if err != nil {
			return n, fmt.Errorf("frame %d: length: %w", n, err)
		}
		field := binary.LittleEndian.Uint64(hdr[:])
		if field == 0 {
			return n, nil
		}
		size, pad := field&sizeMask, uint64(0)
		if field&padFlag != 0 {
			pad = (field >> 56) & 0x7
		}
		if size > 1<<40 {
			return n, fmt.Errorf("frame %d: length field %#x is no record length", n, field)
		}
		if uint64(cap(buf)) < size+pad {
			buf = make([]byte, size+pad)
		}
		buf = buf[:size+pad]
		if _, err := io.ReadFull(r, buf); err != nil {
			return n, fmt.Errorf("frame %d: %d-byte record: %w", n, size, err)
		}
		fn(buf[:size])
		n++
	}
}

// decodeAll reads every record of the named files with etcd's decoder.
func decodeAll(walDir string, names []string) ([]walpb.Record, error) {
	var readers []fileutil.FileReader
	for _, name := range names {
		f, err := os.Open(filepath.Join(walDir, name))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		readers = append(readers, fileutil.NewFileReader(f))
	}
	dec := wal.NewDecoder(readers...)
	var out []walpb.Record
	for {
		var rec walpb.Record
		err := dec.Decode(&rec)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("record %d: %w", len(out), err)
		}
		out = append(out, rec)
	}
}

func walFiles(walDir string) ([]string, error) {
	entries, err := os.ReadDir(walDir)
	if err != nil {
		return nil, fmt.Errorf("WAL dir %s: %w", walDir, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && filepath.Ext(e.Name()) == ".wal" {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("WAL dir %s holds no .wal file", walDir)
	}
	sort.Strings(names)
	return names, nil
}
