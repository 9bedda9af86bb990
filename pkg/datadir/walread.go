package datadir

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
)

// WALEntries is what ReadWAL read.
type WALEntries struct {
	// Entries are the kept entries after the snapshot, in index order, as etcd's
	// ReadAll would return them (a later entry at an index replaces the earlier
	// ones from there on).
	Entries   []raftpb.Entry
	HardState raftpb.HardState
	// SnapshotFound: the WAL records the snapshot it was read from (ReadAll's
	// ErrSnapshotNotFound otherwise).
	SnapshotFound bool
}

// ReadWAL reads the WAL in walDir from the snapshot at on, as etcd's wal.ReadAll
// does on a WAL opened for reading (the CRC chain, the snapshot's term, one
// metadata, entries without a gap; a torn last record is dropped), decoding one
// record at a time with etcd's decoder, and keeps only the entries keep selects.
// ReadAll holds every entry after the snapshot: for the v2 store of a 3.4 or 3.5
// member, 10,000 v3 puts it has no use for, 640 MiB at 64 KiB values.
func ReadWAL(walDir string, at walpb.Snapshot, keep func(raftpb.Entry) bool) (WALEntries, error) {
	var out WALEntries
	files, err := walSegmentsFrom(walDir, at.Index)
	if err != nil {
		return out, err
	}
	var readers []fileutil.FileReader
	for _, f := range files {
		defer f.Close()
		readers = append(readers, fileutil.NewFileReader(f))
	}
	dec := wal.NewDecoder(readers...)
	var metadata []byte
	last := at.Index // the newest entry index read
	for {
		var rec walpb.Record
		err := dec.Decode(&rec)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return out, nil // the end, or a torn last record etcd drops too
		}
		if err != nil {
			return out, fmt.Errorf("read WAL %s: %w", walDir, err)
		}
		switch rec.Type {
		case wal.EntryType:
			var e raftpb.Entry
			if err := e.Unmarshal(rec.Data); err != nil {
				return out, fmt.Errorf("read WAL %s: entry: %w", walDir, err)
			}
			if e.Index <= at.Index {
				continue
			}
			if e.Index > last+1 {
				return out, fmt.Errorf("read WAL %s: %w: entry %d follows entry %d", walDir, wal.ErrSliceOutOfRange, e.Index, last)
			}
			last = e.Index
			n := len(out.Entries)
			for n > 0 && out.Entries[n-1].Index >= e.Index {
				n--
			}
			out.Entries = out.Entries[:n]
			if keep(e) {
				out.Entries = append(out.Entries, e)
			}
		case wal.StateType:
			out.HardState = raftpb.HardState{}
			if err := out.HardState.Unmarshal(rec.Data); err != nil {
				return out, fmt.Errorf("read WAL %s: hard state: %w", walDir, err)
			}
		case wal.MetadataType:
			if metadata != nil && !bytes.Equal(metadata, rec.Data) {
				return out, fmt.Errorf("read WAL %s: %w", walDir, wal.ErrMetadataConflict)
			}
			metadata = rec.Data
		case wal.CrcType:
			if crc := dec.LastCRC(); crc != 0 && rec.Validate(crc) != nil {
				return out, fmt.Errorf("read WAL %s: %w", walDir, wal.ErrCRCMismatch)
			}
			dec.UpdateCRC(rec.Crc)
		case wal.SnapshotType:
			var s walpb.Snapshot
			if err := s.Unmarshal(rec.Data); err != nil {
				return out, fmt.Errorf("read WAL %s: snapshot record: %w", walDir, err)
			}
			if s.Index == at.Index {
				if s.Term != at.Term {
					return out, fmt.Errorf("read WAL %s: %w", walDir, wal.ErrSnapshotMismatch)
				}
				out.SnapshotFound = true
			}
		default:
			return out, fmt.Errorf("read WAL %s: unexpected record type %d", walDir, rec.Type)
		}
	}
}
