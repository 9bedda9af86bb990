package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdconfig"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// resolveDataDir follows a data dir that is (or lies below) a symbolic link to the
// real directory: a kubelet hostPath may well be a symlink, and the operator means
// the data it points at. Everything then works on the real path: the lock sits
// beside the real data dir (a second migrator given the other spelling finds it
// held), the backup copies the real files (not the link), and the steps' etcd is
// given the real path. A link whose target does not exist is refused: there is no
// data to migrate, and creating a data dir behind a dangling link is a guess.
func resolveDataDir(dataDir string) (string, error) {
	fi, err := os.Lstat(dataDir)
	if err != nil {
		// Missing: a new data dir, created by the first step. A dangling link in a
		// parent shows up when the parent is created.
		return dataDir, nil
	}
	real, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(dataDir)
			return "", fmt.Errorf("data dir %s is a symbolic link to %s, which does not exist: point --data-dir (DATA_DIRECTORY) at the etcd data directory or fix the link", dataDir, target)
		}
		return "", fmt.Errorf("data dir %s: %w", dataDir, err)
	}
	return real, nil
}

// checkDataDirAccess refuses a data dir this process cannot read and write (a
// read-only mount, wrong owner or mode) before anything is touched; etcd would fail
// on it mid-step, after the backup, with a less clear message.
func checkDataDirAccess(dataDir string) error {
	fi, err := os.Stat(dataDir)
	if err != nil || !fi.IsDir() {
		return nil // missing (created later) or not a dir (Inspect says so)
	}
	if err := accessRW(dataDir); err != nil {
		return fmt.Errorf("data dir %s is not readable and writable by this process (uid %d): %w; etcd and migrate need to write it: fix its mount, owner or mode", dataDir, os.Getuid(), err)
	}
	return nil
}

// credsWhat names where the steps' extra flags come from.
func (c *Config) credsWhat() string {
	if c.Creds != nil && c.Creds.What != "" {
		return c.Creds.What
	}
	return "ETCD_CREDS (--etcd-server-extra-args)"
}

// checkExtraArgFiles checks that every file the steps' extra flags (what) name exists
// and can be opened for reading, so a wrong TLS path is an input error naming the
// flag and the path, not an etcd that exits mid-step. The files are opened, never
// read: their content (keys) goes nowhere near a log.
func checkExtraArgFiles(args []string, what string) error {
	split, err := etcdconfig.Split(args)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	for _, a := range split {
		if !strings.HasSuffix(a.Name, "-file") {
			continue
		}
		name, path := "--"+a.Name, a.Value
		if path == "" {
			return fmt.Errorf("%s: %s has no path", what, name)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("%s: %s=%s: %w: fix the path or mount the file", what, name, path, unwrapPathErr(err))
		}
		if fi.IsDir() {
			return fmt.Errorf("%s: %s=%s is a directory, not a file", what, name, path)
		}
		fh, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("%s: %s=%s cannot be read: %w: fix its owner or mode", what, name, path, unwrapPathErr(err))
		}
		fh.Close()
	}
	return nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// versionCheckTimeout bounds one `<binary> --version`.
const versionCheckTimeout = 10 * time.Second

// checkBinaryVersions runs every bundled binary the run uses with its version
// command, all at once (a few milliseconds each), and refuses one that reports
// another version than its file name: a mislabeled binary would otherwise run a
// step at the wrong version, which the step's version wait may not catch.
func checkBinaryVersions(bins []string) error {
	seen := map[string]bool{}
	var uniq []string
	for _, b := range bins {
		if !seen[b] {
			seen[b] = true
			uniq = append(uniq, b)
		}
	}
	sort.Strings(uniq)
	errs := make([]error, len(uniq))
	var wg sync.WaitGroup
	for i, b := range uniq {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = checkBinaryVersion(b)
		}()
	}
	wg.Wait()
	return firstNonNil(errs)
}

func firstNonNil(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// checkBinaryVersion runs path's version command and compares the version it
// prints with the one its name ends in (etcd-3.5.35, etcdctl-3.5.35, etcdutl-3.5.35).
func checkBinaryVersion(path string) error {
	base := filepath.Base(path)
	tool, want, ok := strings.Cut(base, "-")
	if !ok {
		return nil
	}
	if _, err := versionfile.ParseVersion(want); err != nil {
		return nil // not a versioned bundled binary
	}
	var args []string
	var prefix string
	switch tool {
	case "etcd":
		args, prefix = []string{"--version"}, "etcd Version:"
	case "etcdctl":
		args, prefix = []string{"version"}, "etcdctl version:"
	case "etcdutl":
		args, prefix = []string{"version"}, "etcdutl version:"
	default:
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), versionCheckTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(etcdproc.ChildEnv(), "ETCDCTL_API=3")
	cmd.WaitDelay = time.Second
	etcdproc.DiesWithMigrate(cmd)
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return fmt.Errorf("bundled binary %s did not answer `%s %s` within %s: it is not a working etcd binary; rebuild it (make etcd-binaries) or fix --bin-dir", path, base, strings.Join(args, " "), versionCheckTimeout)
	}
	if !strings.Contains(string(out), prefix) {
		why := "printed no version"
		if err != nil {
			why = "failed: " + err.Error()
		}
		return fmt.Errorf("bundled binary %s: `%s %s` %s: it is not a working %s binary; rebuild it (make etcd-binaries) or fix --bin-dir", path, base, strings.Join(args, " "), why, tool)
	}
	return versionMatches(path, tool+" "+strings.Join(args, " "), prefix, string(out))
}

// versionMatches compares the version a binary's output names after prefix with the
// one its file name ends in (etcd-3.5.35); how is the command that printed it.
func versionMatches(path, how, prefix, out string) error {
	_, want, _ := strings.Cut(filepath.Base(path), "-")
	got := ""
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
			got = strings.TrimSpace(v)
			break
		}
	}
	if got != want {
		if len(got) > 40 {
			got = got[:40] + "..."
		}
		return fmt.Errorf("bundled binary %s reports version %q (%s) but its name says %s: the bin dir holds a mislabeled binary; rebuild it (make etcd-binaries) or fix --bin-dir/BUNDLED_VERSIONS", path, got, how, want)
	}
	return nil
}
