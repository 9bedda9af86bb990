package migrate

import (
	"context"
	"time"

	"github.com/etcd-migrate/etcd-migrate/pkg/backup"
)

// backupBeforeChange runs before the first step that changes data. The copy of a
// migration that has not reached its target yet is kept (a retry copies nothing
// and never replaces it with partly migrated data); otherwise, unless --backup=
// false, a new copy is taken. It returns the note a failed step's error adds.
func (c *Config) backupBeforeChange(ctx context.Context, st Status) (string, error) {
	log := c.Logger
	bs := backup.Inspect(c.DataDir)
	if bs.Pending() {
		r := bs.Record
		log.Info("backup kept", "path", bs.Path, "before", r.Before, "target", r.Target, "taken", r.Taken,
			"reason", "its migration has not reached a target yet")
		return "; the data as it was before this migration (" + r.Before + ") is in " + bs.Path, nil
	}
	if !c.Backup {
		return "", nil
	}
	if bs.RecordErr != nil {
		log.Warn("backup record unreadable: the backup is replaced", "path", bs.Path, "err", bs.RecordErr)
	}
	t := time.Now()
	b, err := backup.Make(ctx, c.DataDir, backup.Record{Before: pairText(st.Current), Target: c.Target.String(), WALDir: c.WALDir})
	if err != nil {
		return "", err
	}
	log.Info("backup written", "path", b.Path, "before", pairText(st.Current), "target", c.Target.String(),
		"files", b.Files, "bytes", b.Bytes, "cloned_files", b.Cloned, "cloned_bytes", b.ClonedBytes, "duration_ms", time.Since(t).Milliseconds())
	return "; the data as it was before this run is in " + b.Path, nil
}

// completeBackup records that this run reached its target: the pending backup's
// migration has ended, and the next migration replaces it. A failure is logged,
// not fatal (the next run that reaches a target records it).
func (c *Config) completeBackup() {
	ok, err := backup.Complete(c.DataDir, c.Target.String())
	switch {
	case err != nil:
		c.Logger.Warn("could not record the backup's migration as completed; the next run that reaches its target does", "path", backup.RecordPath(c.DataDir), "err", err)
	case ok:
		c.Logger.Info("backup kept as the copy before the completed migration; the next migration replaces it", "path", backup.Path(c.DataDir))
	}
}
