package etcdproc

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
)

// DeleteV2 deletes key and everything below it through the v2 keys API of the
// step's etcd (it runs with --enable-v2). A key already gone counts as deleted.
func (p *Process) DeleteV2(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := strings.TrimSuffix(p.URL(), "/") + (&url.URL{Path: "/v2/keys" + key}).EscapedPath() + "?recursive=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return fmt.Errorf("v2 delete %s: %w", key, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("v2 delete %s: %s: %s", key, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// QuorumReadV2 makes etcd append and apply a raft entry without changing the v2
// store: a quorum GET goes through raft but moves no store index. V2SnapshotCount
// of them make etcd 2.x save a snapshot, which it has no other way to be asked
// for. A key that does not exist answers 404, which is fine.
func (p *Process) QuorumReadV2(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(p.URL(), "/")+"/v2/keys/etcd-migrate-snapshot-trigger?quorum=true", nil)
	if err != nil {
		return err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return fmt.Errorf("v2 quorum read: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("v2 quorum read: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// V2SnapshotCount is the --snapshot-count of an etcd2-mode step's etcd.
const V2SnapshotCount = 100

// SaveSnapshotV2 waits until the newest v2 snapshot on disk records the cluster
// version at minor and returns its index. Through the v2 API and the files only:
// etcd 2.x has no v3 API and no call that saves a snapshot. Quorum reads are raft
// entries that change no key: sent in bursts while no new snapshot shows up, they
// make etcd save one within V2SnapshotCount of them; none is sent while a new one
// is being written.
func (p *Process) SaveSnapshotV2(ctx context.Context, minor string) (uint64, error) {
	var last string
	var seen, lastIdx, prevIdx uint64
	prevSize := int64(-1)
	for {
		idx, size, err := datadir.NewestSnapshotFile(p.cfg.DataDir)
		if err != nil {
			return 0, err
		}
		switch {
		case idx == seen:
			for i := 0; i < 20; i++ {
				if err := p.QuorumReadV2(ctx); err != nil && ctx.Err() != nil {
					return 0, err
				}
			}
		case idx != prevIdx || size != prevSize:
			// A new snapshot, maybe still growing (etcd 2.x writes it in place):
			// read it, a copy of the whole store, once it stopped.
		default:
			if last, lastIdx, err = datadir.SnapshotClusterVersion(p.cfg.DataDir); err != nil {
				return 0, err
			}
			if AtMinor(last, minor) {
				return lastIdx, nil
			}
			if lastIdx == idx { // else unreadable yet: look again
				seen = idx
			}
		}
		prevIdx, prevSize = idx, size
		if err := p.sleepOrDone(ctx, PollInterval); err != nil {
			return 0, fmt.Errorf("etcd %s: waiting for a v2 snapshot recording cluster version %s (newest at index %d records %q): %w", p.cfg.Version, minor, lastIdx, last, err)
		}
	}
}
