// Package migrate ties the pieces together for one run: inspect the data dir, plan,
// check everything the plan needs before touching anything, run the steps under the
// data dir lock, and hand over to the target etcd.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/pkg/backup"
	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/durable"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdconfig"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/lock"
	"github.com/etcd-migrate/etcd-migrate/pkg/lockstep"
	"github.com/etcd-migrate/etcd-migrate/pkg/memberdir"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
	"github.com/etcd-migrate/etcd-migrate/pkg/steps"
	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// Config is everything a run needs, resolved from flags and environment.
type Config struct {
	DataDir string
	// WALDir is the member's separate WAL dir (etcd's --wal-dir), "" when the WAL
	// is in the data dir.
	WALDir  string
	BinDir  string
	Target  versionfile.Pair
	Bundled []*version.Version
	// RequestedTarget is the TARGET_VERSION asked for when it is not bundled and
	// Target is its minor's bundled release (logged once); nil otherwise.
	RequestedTarget *version.Version

	// Member is the identity and the private, loopback-only URLs of the steps' etcd;
	// its ExtraArgs (ETCD_CREDS, filtered: Creds.StepArgs) go to every etcd a step
	// starts.
	etcdproc.Member

	// Served is the served etcd's settings: the args after "--" and the ETCD_*
	// variables it reads. Creds is ETCD_CREDS read into the same model.
	Served *etcdconfig.Member
	Creds  *etcdconfig.Creds
	// WillExec: etcd-<target> is exec'd after the run with ExecArgs (the args after
	// "--"); preflight checks that it accepts them.
	WillExec bool
	ExecArgs []string

	ReadyTimeout time.Duration
	StopTimeout  time.Duration
	// MembersTimeout bounds each wait for the other members of a cluster of several.
	MembersTimeout time.Duration
	// InitialClusterGiven: INITIAL_CLUSTER (or --initial-cluster after --) was set,
	// not defaulted; it must then agree with the members the data records.
	InitialClusterGiven bool
	// members are the members the data records; self is this member's name
	// among them.
	members []v3backend.Member
	self    string

	// DataPrefix is the Kubernetes key prefix (ETCD_DATA_PREFIX).
	DataPrefix string

	// TTLKeysDir (default <prefix>/events): keys below it without a v2 TTL get a
	// one-hour lease when the v2 store is converted.
	TTLKeysDir string

	// Backup copies the data dir to <data-dir>.bak before the first step that
	// changes data files.
	Backup bool

	// DropV2Content lets the hop into 3.6 drop v2 keys outside DataPrefix too
	// (DROP_V2_CONTENT); those under it are always dropped (see v2tov3.V2Content).
	DropV2Content bool

	// MoveBinaries copies etcd-<target>/etcdctl-<target> to etcd/etcdctl in BinDir
	// (what the Kubernetes image does unless DO_NOT_MOVE_BINARIES=true).
	MoveBinaries bool

	Logger *slog.Logger
}

// InputError marks bad configuration or input: exit code 2, nothing was touched.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func inputErr(err error) error {
	if err == nil {
		return nil
	}
	var ie *InputError
	if errors.As(err, &ie) {
		return err
	}
	return &InputError{Err: err}
}

// Status is what a data dir says about itself.
type Status struct {
	DataDir     string
	VersionFile *versionfile.Pair // nil when version.txt is missing
	Detected    datadir.State
	// Current is the pair planning starts from: version.txt, else what the data
	// tells; nil for an empty data dir. When a step cut short moved the data one
	// minor from version.txt, it is the data's minor with the patch unknown.
	Current *versionfile.Pair
	// VersionFileErr is why version.txt could not be read, other than its absence
	// (malformed, unreadable); VersionFile is then nil.
	VersionFileErr error
	// Assumed: the data is v2-only without version.txt and Current is the oldest
	// bundled etcd 2.x, which such data is taken to come from (Config.Current).
	Assumed bool
}

// CutShort says a step moved the data off what version.txt records before it was
// cut short: planning starts from the data's minor.
func (s Status) CutShort() bool {
	return s.Current != nil && s.VersionFile != nil && !s.Current.Equal(*s.VersionFile)
}

// oldestEtcd2 is the oldest bundled etcd 2.x, nil if none.
func oldestEtcd2(bundled []*version.Version) *version.Version {
	var oldest *version.Version
	for _, b := range bundled {
		if versionfile.Major(b) == 2 && (oldest == nil || b.LessThan(oldest)) {
			oldest = b
		}
	}
	return oldest
}

// Inspect reads version.txt and the data, and checks that they agree. It changes
// nothing.
func Inspect(dataDir string) (Status, error) {
	st := Status{DataDir: dataDir}
	if fi, err := os.Stat(dataDir); err == nil && !fi.IsDir() {
		return st, inputErr(fmt.Errorf("data dir %s is not a directory: point --data-dir (DATA_DIRECTORY) at the etcd data directory", dataDir))
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, inputErr(fmt.Errorf("data dir %s: %w", dataDir, err))
	}
	// version.txt first: what it says is reported even when the data cannot be
	// read (an etcd serving it holds the db's lock).
	p, verr := versionfile.Read(dataDir)
	if verr == nil {
		st.VersionFile = &p
	} else if !errors.Is(verr, versionfile.ErrNotExist) {
		st.VersionFileErr = verr
	}
	detected, err := datadir.Detect(dataDir)
	orig, swapped := memberdir.Unrecorded(dataDir)
	if swapped {
		// A run first puts the original member dir back: judge that one.
		detected, err = datadir.DetectMemberDir(dataDir, orig)
	}
	if err != nil {
		return st, inputErr(err)
	}
	st.Detected = detected
	switch {
	case verr == nil:
		if detected.Empty {
			// version.txt without data (an empty dir migrated before): there is
			// nothing to move, whatever it names.
			return st, nil
		}
		cur, err := detected.Reconcile(p)
		if err != nil {
			return st, inputErr(err)
		}
		// The v2 store is read from dataDir/member: with a swap pending, the run
		// checks it once the original is back.
		if !swapped {
			if err := checkNoV2Content(dataDir, p, detected); err != nil {
				return st, inputErr(err)
			}
		}
		st.Current = &cur
	case errors.Is(verr, versionfile.ErrNotExist):
		if detected.Empty {
			return st, nil
		}
		p, err := datadir.FromState(detected)
		if err != nil {
			return st, inputErr(fmt.Errorf("%s has no %s: %w", dataDir, versionfile.FileName, err))
		}
		st.Current = &p
	default:
		return st, inputErr(verr)
	}
	return st, nil
}

// Current is Inspect with the seed's rule for v2-only data without version.txt:
// it was written by the oldest etcd 2.x of the image (the conversion reads any
// 2.x's v2 store). Plan and status take the same answer; the assumption is logged.
func (c *Config) Current() (Status, error) {
	st, err := Inspect(c.DataDir)
	if oldest := oldestEtcd2(c.Bundled); errors.Is(err, datadir.ErrUnversionedEtcd2) && oldest != nil {
		p := versionfile.Pair{Version: oldest, Storage: versionfile.StorageEtcd2}
		c.logger().Warn("etcd2 data without version.txt: taken as written by the oldest bundled etcd 2.x", "data_dir", c.DataDir, "current", p.String())
		st.Current, st.Assumed, err = &p, true, nil
	}
	return st, err
}

// logger is c.Logger, or one that discards when none was set (a Config built by a
// test or a caller that logs nothing).
func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// Plan inspects the data dir and plans the steps to the target.
func (c *Config) Plan() (Status, []steprun.Step, error) {
	st, err := c.Current()
	if err != nil {
		return st, nil, err
	}
	if st.Current == nil {
		if err := checkEmptyDirTarget(c.Target); err != nil {
			return st, nil, inputErr(err)
		}
	}
	if st.Current == nil && st.VersionFile != nil && st.VersionFile.Equal(c.Target) {
		return st, nil, nil // an empty data dir that already records the target
	}
	if err := c.readCluster(st); err != nil {
		return st, nil, inputErr(err)
	}
	plan, err := steps.Plan(st.Current, c.Target, c.Bundled)
	if err == nil && c.MultiMember {
		plan, err = steps.ForCluster(plan, max(len(c.members), len(initialClusterEntries(c.InitialCluster))))
	}
	if err != nil {
		return st, nil, inputErr(err)
	}
	return st, plan, nil
}

// Run migrates the data dir to the target under the data dir lock. On success the
// lock is returned still held, so the caller can hand it to the exec'd etcd.
func (c *Config) Run(ctx context.Context) (*lock.Lock, error) {
	log := c.Logger
	real, err := resolveDataDir(c.DataDir)
	if err != nil {
		return nil, inputErr(err)
	}
	if real != filepath.Clean(c.DataDir) {
		log.Info("data dir is a symbolic link: migrating the directory it points to", "data_dir", c.DataDir, "real_path", real)
		c.DataDir = real
	}
	if err := checkDataDirAccess(c.DataDir); err != nil {
		return nil, inputErr(err)
	}
	created, err := prepareLockDir(c.DataDir)
	if err != nil {
		return nil, inputErr(err)
	}
	lk, err := lock.Acquire(c.DataDir)
	if err != nil {
		if created {
			os.Remove(c.DataDir)
		}
		return nil, inputErr(err)
	}
	ok := false
	defer func() {
		if !ok {
			lk.Release()
			if created {
				os.Remove(c.DataDir) // only if still empty: a refused run leaves nothing
			}
		}
	}()
	start := time.Now()
	if c.RequestedTarget != nil {
		log.Info("target version is not bundled: its minor's bundled release runs, and version.txt records it", "requested", c.RequestedTarget.String(), "runs", c.Target.Version.String())
	}
	if cleaned, err := backup.CleanStale(c.DataDir); err != nil {
		return nil, err
	} else if len(cleaned) > 0 {
		log.Info("removed what an interrupted backup left", "paths", cleaned)
	}
	if err := c.recoverReplacement(); err != nil {
		return nil, err
	}
	st, plan, err := c.Plan()
	if err != nil {
		return nil, err
	}
	if st.CutShort() {
		log.Warn("the data is one minor off version.txt: a step was cut short after it changed what the data records; planning from the data's minor",
			"version_txt", st.VersionFile.String(), "detected", st.Detected.String(), "current", st.Current.String())
	}
	log.Info("plan", "data_dir", c.DataDir, "current", pairText(st.Current), "detected", st.Detected.String(),
		"target", c.Target.String(), "steps", stepsText(plan))
	env, err := c.stepEnv()
	if err != nil {
		return nil, inputErr(err)
	}
	if err := c.preflight(env, plan); err != nil {
		return nil, inputErr(err)
	}
	if err := c.runSteps(ctx, env, st, plan); err != nil {
		return nil, err
	}
	c.completeBackup()
	if c.MoveBinaries {
		c.moveBinaries()
	}
	log.Info("migration done", "version_txt", c.Target.String(), "steps", len(plan), "duration_ms", time.Since(start).Milliseconds())
	ok = true
	return lk, nil
}

// runSteps runs the plan, taking the backup before the first step that changes the
// data. An error says what version.txt records and how to resume.
func (c *Config) runSteps(ctx context.Context, env *steprun.Env, st Status, plan []steprun.Step) error {
	backupNote, backedUp := "", false
	for i, s := range plan {
		if !backedUp && steprun.ChangesData(s) {
			backedUp = true
			note, err := c.backupBeforeChange(ctx, st)
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("interrupted by a signal before step %d/%d (nothing changed yet): %w: rerun to resume", i+1, len(plan), err)
				}
				// Nothing was touched: exit 2, as for any refusal before the steps.
				return inputErr(fmt.Errorf("before step %d/%d (nothing changed yet): %w: the backup %s could not be written; fix that (space, permissions, path) and rerun", i+1, len(plan), err, backup.Path(c.DataDir)))
			}
			backupNote = note
		}
		if err := env.Run(ctx, s); err != nil {
			last := "the data was not changed"
			if i > 0 {
				last = "version.txt records " + plan[i-1].Span().To.String()
			} else if st.VersionFile != nil {
				last = "version.txt records " + st.VersionFile.String()
			} else if st.Current != nil {
				last = "no version.txt was written (the data was detected as " + st.Current.String() + ")"
			}
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted by a signal during step %d/%d %s; its etcd was stopped and %s%s: rerun to resume", i+1, len(plan), s, last, backupNote)
			}
			return fmt.Errorf("step %d/%d failed (%s%s; rerun to retry it): %w", i+1, len(plan), last, backupNote, err)
		}
	}
	return nil
}

// recoverReplacement settles a member dir replacement (etcd2 -> etcd3 conversion,
// snapshot-restore rollback) that a crash or failure interrupted: the data goes back
// to what version.txt records, and the step runs again.
func (c *Config) recoverReplacement() error {
	recovered, err := memberdir.Recover(c.DataDir)
	if err != nil {
		return err
	}
	if recovered {
		c.Logger.Warn("found an interrupted member dir replacement and settled it as version.txt records", "data_dir", c.DataDir)
	}
	return nil
}

// preflight checks what the plan needs before anything is touched: every binary it
// runs (and the target's, for the exec) exists, is executable and reports the
// version its name says; the target etcd accepts the args after "--" (when it is
// exec'd); the files ETCD_CREDS names can be read; the private ports are free and
// loopback. (ETCD_CREDS listeners are refused when it is parsed.)
func (c *Config) preflight(env *steprun.Env, plan []steprun.Step) error {
	if len(plan) == 0 {
		// Nothing to write, so nothing can be left half-done: the exec'd etcd
		// checks its own command line (a flag it refuses: exit 2 naming it, before
		// it opens the data). Starting the target once more here would double the
		// cost of every restart of a migrated member.
		return steprun.CheckExecutable(steprun.EtcdBinary(c.BinDir, c.Target.Version))
	}
	if err := c.CheckBinaries(plan); err != nil {
		return err
	}
	if !steprun.AnyChangesData(plan) {
		return nil
	}
	if err := c.checkWALDir(plan); err != nil {
		return err
	}
	if err := c.checkAlarms(plan); err != nil {
		return err
	}
	for _, s := range plan {
		if err := s.Preflight(env); err != nil {
			return err
		}
	}
	if err := c.checkDiskSpace(plan); err != nil {
		return err
	}
	if err := checkExtraArgFiles(c.ExtraArgs, c.credsWhat()); err != nil {
		return err
	}
	u, err := url.Parse(c.ClientURL)
	if err != nil || u.Port() == "" {
		return fmt.Errorf("private client URL %q is not a URL with a port (LISTEN_CLIENT_URLS)", c.ClientURL)
	}
	if !etcdconfig.IsLoopback(u.Hostname()) {
		return fmt.Errorf("private client URL %s is not loopback: the migration etcd must not be reachable from outside; use http://127.0.0.1:<port>", c.ClientURL)
	}
	if err := checkFree("client", u.Host); err != nil {
		return err
	}
	// A lone member's steps listen for peers on loopback, a member of several's
	// where its peers reach it.
	for _, pu := range strings.Split(c.Member.PeerListenURLs(), ",") {
		u, err := url.Parse(strings.TrimSpace(pu))
		if err != nil || u.Port() == "" {
			return fmt.Errorf("peer URL %q is not a URL with a port (LISTEN_PEER_URLS)", pu)
		}
		if err := checkFree("peer", u.Host); err != nil {
			return err
		}
	}
	return nil
}

// CheckBinaries is the part of the preflight that reads the bin dir, run by plan
// too: every binary the plan runs, and the target's, exists, is executable and
// reports the version its name says; when etcd is exec'd, the target accepts its
// command line. It changes nothing; a refusal is an InputError.
func (c *Config) CheckBinaries(plan []steprun.Step) error {
	target := steprun.EtcdBinary(c.BinDir, c.Target.Version)
	bins := []string{target}
	for _, s := range plan {
		bins = append(bins, s.Binaries(c.BinDir)...)
	}
	for _, b := range bins {
		if err := steprun.CheckExecutable(b); err != nil {
			return inputErr(err)
		}
	}
	var accepts func() error
	if c.WillExec {
		accepts = c.startTargetCheck()
	}
	if accepts != nil {
		// The target's own check reads its version too.
		bins = slices.DeleteFunc(bins, func(b string) bool { return b == target })
	}
	if err := checkBinaryVersions(bins); err != nil {
		return inputErr(err)
	}
	if accepts != nil {
		if err := accepts(); err != nil {
			return inputErr(err)
		}
		if steprun.AnyChangesData(plan) {
			c.logTargetDeprecations()
		}
	}
	return nil
}

// startTargetCheck starts checkTargetAccepts (the target etcd exists and accepts
// the command line it will be exec'd with) and returns the wait for its answer; it
// runs while the other binaries report their versions.
func (c *Config) startTargetCheck() func() error {
	done := make(chan error, 1)
	go func() {
		if err := steprun.CheckExecutable(steprun.EtcdBinary(c.BinDir, c.Target.Version)); err != nil {
			done <- err
			return
		}
		done <- c.checkTargetAccepts()
	}()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() { err = <-done })
		return err
	}
}

// checkAlarms refuses etcd3 data with an active alarm: under NOSPACE etcd takes no
// write (the one every step makes to prove it serves), under CORRUPT no request.
func (c *Config) checkAlarms(plan []steprun.Step) error {
	if len(plan) == 0 || plan[0].Span().From.Storage != versionfile.StorageEtcd3 {
		return nil
	}
	if _, err := os.Stat(datadir.BackendPath(c.DataDir)); err != nil {
		return nil // no backend: the steps say what is missing
	}
	o, err := datadir.ReadOffline(c.DataDir)
	if err != nil || len(o.Alarms) == 0 {
		return nil
	}
	return fmt.Errorf("the data dir %s records the etcd alarm %s: etcd refuses writes until it is disarmed, and every step must write; with the etcd that wrote the data, compact and defragment (NOSPACE: the db reached --quota-backend-bytes; raise it if needed), run `etcdctl alarm disarm`, then run migrate again",
		c.DataDir, strings.Join(o.Alarms, ", "))
}

// checkWALDir checks a separate WAL dir before a run that starts etcd: it must
// hold the member's WAL (an etcd given a db and an empty WAL dir would start a new
// member), and no step may replace the member dir, since the replacement's new WAL
// would land in the data dir while the old one stayed in the WAL dir.
func (c *Config) checkWALDir(plan []steprun.Step) error {
	if c.WALDir == "" {
		return nil
	}
	if filepath.Clean(c.WALDir) == datadir.WALDir(c.DataDir) {
		c.WALDir = "" // etcd's own place: nothing separate
		return nil
	}
	for _, s := range plan {
		if s.RewritesMemberDir() {
			// etcd with --wal-dir writes no member/wal: the command creates it.
			return fmt.Errorf("%s: a separate WAL dir (%s) is not supported for this step, which writes a new member dir: move the WAL into %s for the migration (etcd stopped: mkdir -p %s && mv %s/* %s/) and drop --wal-dir/ETCD_WAL_DIR, or choose a target reached by upgrades and 3.6+ rollbacks only",
				s, c.WALDir, datadir.WALDir(c.DataDir), datadir.WALDir(c.DataDir), c.WALDir, datadir.WALDir(c.DataDir))
		}
	}
	wals, err := filepath.Glob(filepath.Join(c.WALDir, "*.wal"))
	if err != nil || len(wals) == 0 {
		return fmt.Errorf("the WAL dir %s (--wal-dir/ETCD_WAL_DIR) holds no WAL files, but the data dir %s holds etcd data: point --wal-dir at this member's WAL, or drop it if the WAL is in %s", c.WALDir, c.DataDir, datadir.WALDir(c.DataDir))
	}
	return nil
}

func checkFree(what, hostport string) error {
	l, err := net.Listen("tcp", hostport)
	if err != nil {
		return fmt.Errorf("%s port %s is in use or cannot be bound (%v): stop what listens there or choose another port (--port/--peer-port)", what, hostport, err)
	}
	return l.Close()
}

// moveBinaries copies etcd-<target> and etcdctl-<target> to etcd and etcdctl in the
// bin dir, as the Kubernetes image does. A failure is logged, not fatal: the exec
// uses etcd-<target> itself.
func (c *Config) moveBinaries() {
	for _, name := range []string{"etcd", "etcdctl"} {
		src := filepath.Join(c.BinDir, name+"-"+c.Target.Version.String())
		dst := filepath.Join(c.BinDir, name)
		if err := copyFile(src, dst); err != nil {
			c.Logger.Warn("could not copy bundled binary (set DO_NOT_MOVE_BINARIES=true to skip)", "from", src, "to", dst, "err", err)
			continue
		}
		c.Logger.Info("copied bundled binary", "from", src, "to", dst)
	}
}

// copyFile installs a copy of src as dst: temp file, fsync, rename, fsync of the
// bin dir, so that a power cut leaves the previous binary or the whole new one.
func copyFile(src, dst string) error {
	return durable.CopyFile(src, dst, 0o755)
}

func pairText(p *versionfile.Pair) string {
	if p == nil {
		return "empty"
	}
	return p.String()
}

func stepsText(plan []steprun.Step) []string {
	out := make([]string, len(plan))
	for i, s := range plan {
		out[i] = s.String()
	}
	return out
}

// stepEnv is what the run's steps share.
func (c *Config) stepEnv() (*steprun.Env, error) {
	env := &steprun.Env{
		DataDir: c.DataDir, WALDir: c.WALDir, BinDir: c.BinDir, Member: c.Member,
		ReadyTimeout: c.ReadyTimeout, StopTimeout: c.StopTimeout, Logger: c.Logger,
		TTLKeysDir: c.TTLKeysDir, DefaultTTL: time.Hour, DataPrefix: c.DataPrefix,
		DropV2Content: c.DropV2Content,
	}
	if c.MultiMember {
		peerTLS, err := c.peerTLS()
		if err != nil {
			return nil, err
		}
		env.Cluster = &lockstep.Cluster{Members: c.members, Self: c.self, PeerTLS: peerTLS,
			Timeout: c.MembersTimeout, ReportEvery: 5 * time.Second, Linger: c.linger(), Logger: c.Logger,
			// A killed member's rerun may come after the kubelet's back-off
			// (at most 5 min) and then wait up to --members-timeout.
			DoneTTL: 5*time.Minute + c.MembersTimeout}
	}
	return env, nil
}

// linger is how long a member stays up after a barrier: ten raft heartbeats (etcd's
// default 100 ms, or the served etcd's --heartbeat-interval), at least a second, so
// the leader's heartbeats tell every member the last barrier lease is committed.
func (c *Config) linger() time.Duration {
	hb := 100 * time.Millisecond
	if c.Served != nil && c.Served.HeartbeatInterval > 0 {
		hb = time.Duration(c.Served.HeartbeatInterval) * time.Millisecond
	}
	return max(10*hb, time.Second)
}
