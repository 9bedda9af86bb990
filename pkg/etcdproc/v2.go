package etcdproc

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
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
