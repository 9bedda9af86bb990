// Package app is the migrate command: flags, environment, and wiring. cmd/migrate's
// main only runs it; tests outside the binary (the static pod manifest test) parse a
// command line and environment with the same code through Parse.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/etcd-migrate/etcd-migrate/pkg/backup"
	"github.com/etcd-migrate/etcd-migrate/pkg/datadir"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdconfig"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/migrate"
	"github.com/etcd-migrate/etcd-migrate/pkg/steps"
	"github.com/etcd-migrate/etcd-migrate/pkg/v3backend"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// defaultBundledVersions is set at build time (-ldflags -X
// github.com/etcd-migrate/etcd-migrate/cmd/migrate/app.defaultBundledVersions=...) to
// the versions the image bundles; BUNDLED_VERSIONS or --bundled-versions override it.
var defaultBundledVersions = ""

// options are the raw flag values; resolve turns them and the environment into a
// migrate.Config.
type options struct {
	dataDir, targetVersion, targetStorage, binDir, bundled  string
	name, initialCluster, listenPeerURLs, advertisePeerURLs string
	listenClientURLs, dataPrefix, ttlKeysDir, extraArgs     string
	port, peerPort                                          int
	exec, backup, dropV2                                    bool
	logFormat, logLevel                                     string
	readyTimeout, stopTimeout, membersTimeout               time.Duration
	// all holds every flag; a command registers those it uses (the same *Flag, so
	// resolve reads them through all whatever command parsed them).
	all *pflag.FlagSet
}

func (o *options) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.dataDir, "data-dir", "", "etcd data directory to migrate (env DATA_DIRECTORY, else --data-dir after -- or ETCD_DATA_DIR)")
	fs.StringVar(&o.targetVersion, "target-version", "", "etcd version to migrate to and run, e.g. 3.6.16 (env TARGET_VERSION)")
	fs.StringVar(&o.targetStorage, "target-storage", "etcd3", "storage to migrate to: etcd3 or etcd2 (env TARGET_STORAGE)")
	fs.StringVar(&o.binDir, "bin-dir", "/usr/local/bin", "directory with the bundled etcd-<v>, etcdctl-<v>, etcdutl-<v>")
	fs.StringVar(&o.bundled, "bundled-versions", defaultBundledVersions, "bundled etcd versions, comma or space separated (env BUNDLED_VERSIONS)")
	fs.StringVar(&o.name, "name", "", "member name (env ETCD_NAME, else --name after --, else etcd-$ETCD_HOSTNAME, else etcd-$HOSTNAME)")
	fs.StringVar(&o.initialCluster, "initial-cluster", "", "initial cluster (env INITIAL_CLUSTER, else --initial-cluster after --; default <name>=http://localhost:<peer-port>)")
	fs.StringVar(&o.listenPeerURLs, "listen-peer-urls", "", "peer URLs of the migration etcd (env LISTEN_PEER_URLS, else --listen-peer-urls after --; default http://localhost:<peer-port>)")
	fs.StringVar(&o.advertisePeerURLs, "initial-advertise-peer-urls", "", "advertised peer URLs (env INITIAL_ADVERTISE_PEER_URLS, else the flag after --; default http://localhost:<peer-port>)")
	fs.StringVar(&o.listenClientURLs, "listen-client-urls", "", "private loopback client URL of the migration etcd (env LISTEN_CLIENT_URLS; default http://127.0.0.1:<port>)")
	fs.IntVar(&o.port, "port", 0, "private client port (default 18629, or 18631 when the data dir path contains \"event\")")
	fs.IntVar(&o.peerPort, "peer-port", 0, "peer port (default 2380, or 2381 when the data dir path contains \"event\")")
	fs.StringVar(&o.dataPrefix, "etcd-data-prefix", "/registry", "Kubernetes key prefix (env ETCD_DATA_PREFIX)")
	fs.StringVar(&o.ttlKeysDir, "ttl-keys-directory", "", "directory of keys that must expire (env TTL_KEYS_DIRECTORY; default <prefix>/events)")
	fs.StringVar(&o.extraArgs, "etcd-server-extra-args", "", "extra flags for every etcd a step starts, e.g. peer TLS, filtered (env ETCD_CREDS; unset: the --peer-* flags after --)")
	fs.BoolVar(&o.exec, "exec", true, "exec etcd-<target-version> after migrating; --exec=false exits 0 instead")
	fs.BoolVar(&o.dropV2, "drop-v2-content", false, "let the hop into etcd 3.6 drop v2 keys outside --etcd-data-prefix too (env DROP_V2_CONTENT=true); v2 keys under it are always dropped")
	fs.BoolVar(&o.backup, "backup", true, "copy the data dir to <data-dir>.bak before the first step that changes it")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug (adds the step etcd's own log lines), info, warn, error")
	fs.DurationVar(&o.readyTimeout, "step-timeout", 5*time.Minute, "how long one step may wait for its etcd to take over the data")
	fs.DurationVar(&o.stopTimeout, "stop-timeout", 30*time.Second, "how long a step's etcd may take to stop gracefully before SIGKILL")
	fs.DurationVar(&o.membersTimeout, "members-timeout", 4*time.Minute, "on a cluster of several members: how long a step waits for the other members (their cluster version, the barrier) before it fails naming them")
}

// command is what a command line runs: a migration, plan or status. They take the
// same flags, variables and etcd args; what a command does not need is not required
// (status needs no target).
type command int

const (
	cmdRun command = iota
	cmdPlan
	cmdStatus
)

// resolved is the outcome of flags + environment + defaults.
type resolved struct {
	cfg migrate.Config
	// stripped: ETCD_CREDS flags the steps do not get (logged).
	stripped []etcdconfig.Stripped
	// unusedClientURLs: the URLs of a LISTEN_CLIENT_URLS list the steps' private
	// listener does not use (logged).
	unusedClientURLs []string
	// etcdImage and mediaType: ETCD_IMAGE and STORAGE_MEDIA_TYPE, the variables of
	// Kubernetes' upgrade document (logged).
	etcdImage, mediaType string
	exec                 bool
	logFmt               string
	logLvl               slog.Level
	bundled              string
}

// resolve applies the precedence docs/configuration.md's "Flags and environment" documents: a flag
// set on the command line, else its environment variable, else, for the member's
// name and peer settings, what the served etcd's own settings say (etcdArgs, the args after "--", and the ETCD_*
// variables it reads), else the default.
func (o *options) resolve(fs *pflag.FlagSet, getenv func(string) string, etcdArgs []string) (resolved, error) {
	return o.resolveFor(cmdRun, fs, getenv, etcdArgs)
}

// resolveFor is resolve for what cmd needs: status takes no target (its flags and
// variables are accepted, and not used).
func (o *options) resolveFor(cmd command, fs *pflag.FlagSet, getenv func(string) string, etcdArgs []string) (resolved, error) {
	pick := picker(fs, getenv)
	bad := func(err error) (resolved, error) { return resolved{}, &migrate.InputError{Err: err} }
	served, err := etcdconfig.ParseServed(etcdArgs, getenv)
	if err != nil {
		return bad(err)
	}
	var r resolved
	r.cfg.Served = served
	if cmd == cmdStatus {
		if err := resolveStatus(&r, fs, pick); err != nil {
			return bad(err)
		}
	} else if err := resolveTarget(&r, fs, pick); err != nil {
		return bad(err)
	}
	r.etcdImage, r.mediaType = getenv("ETCD_IMAGE"), getenv("STORAGE_MEDIA_TYPE")
	if cmd != cmdStatus && r.mediaType != "" && r.mediaType != "application/json" && r.cfg.Target.Storage == versionfile.StorageEtcd2 {
		// Kubernetes' upgrade document: the rollback to etcd2 needs JSON objects.
		return bad(fmt.Errorf("STORAGE_MEDIA_TYPE=%s with TARGET_STORAGE=etcd2: an etcd2 target holds JSON values only; switch the API server to --storage-media-type=application/json and rewrite every object, then set STORAGE_MEDIA_TYPE=application/json", r.mediaType))
	}
	if r.logLvl, err = parseLevel(o.logLevel); err != nil {
		return bad(err)
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return bad(fmt.Errorf("--log-format %q: use text or json", o.logFormat))
	}
	if err := o.resolveMember(&r, pick, getenv); err != nil {
		return bad(err)
	}
	prefix := strings.TrimSuffix(pick("etcd-data-prefix", "ETCD_DATA_PREFIX"), "/")
	c := &r.cfg
	c.BinDir, c.WALDir = o.binDir, served.WALDir
	c.WillExec, c.ExecArgs = o.exec, append([]string(nil), etcdArgs...)
	c.TTLKeysDir = orDefault(pick("ttl-keys-directory", "TTL_KEYS_DIRECTORY"), prefix+"/events")
	c.DataPrefix = prefix
	c.Backup, c.ReadyTimeout, c.StopTimeout, c.MembersTimeout = o.backup, o.readyTimeout, o.stopTimeout, o.membersTimeout
	c.MoveBinaries = getenv("DO_NOT_MOVE_BINARIES") != "true"
	c.DropV2Content = o.dropV2 || (!fs.Changed("drop-v2-content") && getenv("DROP_V2_CONTENT") == "true")
	r.exec, r.logFmt = o.exec, o.logFormat
	return r, nil
}

// picker returns the value of a flag when set, else of its environment variable
// when set, else the flag's default.
func picker(fs *pflag.FlagSet, getenv func(string) string) func(flag, env string) string {
	return func(flag, env string) string {
		v, _ := fs.GetString(flag)
		if fs.Changed(flag) {
			return v
		}
		if e := getenv(env); e != "" {
			return e
		}
		return v
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// resolveDataDir is the data dir: --data-dir, DATA_DIRECTORY, else the served
// etcd's (--data-dir after --, or ETCD_DATA_DIR).
func resolveDataDir(r *resolved, fs *pflag.FlagSet, pick func(flag, env string) string) (string, error) {
	dataDir := pick("data-dir", "DATA_DIRECTORY")
	if dataDir == "" && !fs.Changed("data-dir") {
		dataDir = r.cfg.Served.DataDir // --data-dir after --, or ETCD_DATA_DIR
	}
	if dataDir == "" {
		return "", fmt.Errorf("no data dir: set --data-dir or DATA_DIRECTORY (or --data-dir after --)")
	}
	return dataDir, nil
}

// resolveStatus sets what status uses: the data dir and the bundled versions (the
// oldest bundled etcd 2.x is what v2-only data without version.txt is taken as).
// No bundle is no error: such data is then reported as not known.
func resolveStatus(r *resolved, fs *pflag.FlagSet, pick func(flag, env string) string) error {
	dataDir, err := resolveDataDir(r, fs, pick)
	if err != nil {
		return err
	}
	r.cfg.DataDir = dataDir
	if r.bundled = pick("bundled-versions", "BUNDLED_VERSIONS"); strings.TrimSpace(r.bundled) != "" {
		r.cfg.Bundled, err = steps.ParseBundled(r.bundled)
	}
	return err
}

// resolveTarget sets the data dir, the target pair and the bundled versions.
func resolveTarget(r *resolved, fs *pflag.FlagSet, pick func(flag, env string) string) error {
	dataDir, err := resolveDataDir(r, fs, pick)
	if err != nil {
		return err
	}
	tv := pick("target-version", "TARGET_VERSION")
	if tv == "" {
		return fmt.Errorf("no target version: set --target-version or TARGET_VERSION, e.g. 3.6.16")
	}
	ver, err := versionfile.ParseVersion(tv)
	if err != nil {
		return fmt.Errorf("TARGET_VERSION: %w", err)
	}
	stor, err := versionfile.ParseStorage(pick("target-storage", "TARGET_STORAGE"))
	if err != nil {
		return fmt.Errorf("TARGET_STORAGE: %w", err)
	}
	target := versionfile.Pair{Version: ver, Storage: stor}
	if _, err := versionfile.ParsePair(target.String()); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	r.bundled = pick("bundled-versions", "BUNDLED_VERSIONS")
	bundled, err := steps.ParseBundled(r.bundled)
	if err != nil {
		return err
	}
	// Any patch of a bundled minor runs that minor's bundled release; version.txt
	// records what ran, so the same TARGET_VERSION next time is a no-op.
	ran, err := steps.BundledTarget(target.Version, bundled)
	if err != nil {
		return err
	}
	if !ran.Equal(target.Version) {
		r.cfg.RequestedTarget = target.Version
		target.Version = ran
	}
	r.cfg.DataDir, r.cfg.Target, r.cfg.Bundled = dataDir, target, bundled
	return nil
}

// resolveMember sets the identity and private URLs of the steps' etcd, and the
// ETCD_CREDS settings it gets.
func (o *options) resolveMember(r *resolved, pick func(flag, env string) string, getenv func(string) string) error {
	served := r.cfg.Served
	name := orDefault(pick("name", "ETCD_NAME"), served.Name) // --name after --
	if name == "" {
		host := orDefault(getenv("ETCD_HOSTNAME"), getenv("HOSTNAME"))
		if host == "" {
			host, _ = os.Hostname()
		}
		name = "etcd-" + host
	}
	event := strings.Contains(r.cfg.DataDir, "event")
	port, peerPort := o.port, o.peerPort
	if port == 0 {
		port = 18629
		if event {
			port = 18631
		}
	}
	if peerPort == 0 {
		peerPort = 2380
		if event {
			peerPort = 2381
		}
	}
	peerURL := fmt.Sprintf("http://localhost:%d", peerPort)
	initialCluster := orDefault(pick("initial-cluster", "INITIAL_CLUSTER"), served.InitialCluster)
	r.cfg.InitialClusterGiven = initialCluster != ""
	initialCluster = orDefault(initialCluster, name+"="+peerURL)
	// ETCD_CREDS goes to every step's etcd, filtered: what a step sets itself is
	// left out, what would move the data or the member is refused.
	single := !strings.Contains(initialCluster, ",")
	creds, err := etcdconfig.ParseCreds(pick("etcd-server-extra-args", "ETCD_CREDS"), single)
	if err == nil && len(creds.Args) == 0 {
		// Without ETCD_CREDS the steps get the served etcd's peer TLS settings:
		// its peer URLs may be what the steps use.
		creds, err = etcdconfig.PeerTLSCreds(served, single)
	}
	if err != nil {
		return err
	}
	r.stripped, r.cfg.Creds = creds.Stripped, creds
	r.cfg.Member = etcdproc.Member{
		Name:                     name,
		InitialCluster:           initialCluster,
		ListenPeerURLs:           orDefault(pick("listen-peer-urls", "LISTEN_PEER_URLS"), orDefault(served.ListenPeerURLs, peerURL)),
		InitialAdvertisePeerURLs: orDefault(pick("initial-advertise-peer-urls", "INITIAL_ADVERTISE_PEER_URLS"), orDefault(served.InitialAdvertisePeerURLs, peerURL)),
		ClientURL:                orDefault(pick("listen-client-urls", "LISTEN_CLIENT_URLS"), fmt.Sprintf("http://127.0.0.1:%d", port)),
		ExtraArgs:                creds.StepArgs,
		RaftArgs:                 creds.RaftArgs,
	}
	if strings.Contains(r.cfg.ClientURL, ",") {
		used, unused, err := privateClientURL(r.cfg.ClientURL)
		if err != nil {
			return err
		}
		r.cfg.ClientURL, r.unusedClientURLs = used, unused
	}
	return nil
}

// privateClientURL picks, from a LISTEN_CLIENT_URLS list (the Kubernetes image's
// manifests give the served etcd's list), the URL of the steps' private listener:
// the first loopback http or https URL with a port. The steps' listener is
// migrate's own, so the rest are not used; none usable is an error.
func privateClientURL(list string) (string, []string, error) {
	used := ""
	var unused []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if used == "" && err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Port() != "" && etcdconfig.IsLoopback(u.Hostname()) {
			used = s
			continue
		}
		unused = append(unused, s)
	}
	if used == "" {
		return "", nil, fmt.Errorf("LISTEN_CLIENT_URLS %q: no loopback http or https URL with a port for the steps' private listener: add one, e.g. http://127.0.0.1:18629", list)
	}
	return used, unused, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// NewRootCommand is the migrate command line: getenv supplies the environment
// (os.Getenv in the binary).
func NewRootCommand(getenv func(string) string) *cobra.Command {
	return newRootCommand(getenv)
}

func newRootCommand(getenv func(string) string) *cobra.Command {
	return newRootCommandWith(getenv, runAndExec)
}

// runFunc does the root command's work once flags and environment are resolved and
// the etcd args are checked: migrate, then exec (or release the lock).
type runFunc func(ctx context.Context, r resolved, etcdArgs []string) error

func runAndExec(ctx context.Context, r resolved, args []string) error {
	lk, err := r.cfg.Run(ctx)
	if err != nil {
		return err
	}
	if !r.exec {
		return lk.Release()
	}
	if sig, ok := closeSignalGate(ctx); ok {
		lk.Release()
		return interruptedBeforeExec(sig, r.cfg.Target.String())
	}
	return r.cfg.Exec(lk, args)
}

// rootLong is the root command's help: what it does, every environment variable it
// reads and the exit codes (docs/configuration.md: Flags and environment).
const rootLong = `migrate brings the etcd data directory from the version recorded in its version.txt
to TARGET_VERSION/TARGET_STORAGE, one minor at a time with the bundled etcd binaries,
then replaces itself with etcd-<target> and the ETCD-ARGS given after --.

Environment (a flag given on the command line wins over its variable):
  DATA_DIRECTORY               --data-dir (else --data-dir after --, or ETCD_DATA_DIR)
  TARGET_VERSION               --target-version
  TARGET_STORAGE               --target-storage (etcd3 or etcd2)
  BUNDLED_VERSIONS             --bundled-versions
  ETCD_NAME                    --name (else --name after --, else etcd-$ETCD_HOSTNAME,
  ETCD_HOSTNAME, HOSTNAME        else etcd-$HOSTNAME)
  INITIAL_CLUSTER              --initial-cluster (else --initial-cluster after --)
  LISTEN_PEER_URLS             --listen-peer-urls (else --listen-peer-urls after --)
  INITIAL_ADVERTISE_PEER_URLS  --initial-advertise-peer-urls (else the one after --)
  LISTEN_CLIENT_URLS           --listen-client-urls (the steps' private loopback URL;
                               of a list, the first loopback http(s) URL is used)
  ETCD_DATA_PREFIX             --etcd-data-prefix
  TTL_KEYS_DIRECTORY           --ttl-keys-directory
  ETCD_CREDS                   --etcd-server-extra-args: extra flags of every step's
                               etcd (e.g. peer TLS); the flags a step sets itself are
                               left out, those that would move the data or the member
                               are refused (docs/configuration.md: "ETCD_CREDS")
  DROP_V2_CONTENT              "true": --drop-v2-content
  DO_NOT_MOVE_BINARIES         "true": do not copy etcd-<target>/etcdctl-<target> to
                               etcd/etcdctl in the bin dir
  STORAGE_MEDIA_TYPE           Kubernetes' storage media type: anything but
                               application/json with TARGET_STORAGE=etcd2 is refused
                               (etcd2 holds JSON values only)
  ETCD_IMAGE                   accepted and not used (Kubernetes' upgrade document sets
                               it; the manifest's image is what runs)
  ETCD_<FLAG>                  read by the exec'd etcd as its --<flag> (ETCD_DATA_DIR,
                               ETCD_NAME, ...); migrate reads them too. One shadowed by
                               the same flag after -- is left out of etcd's environment.
                               A separate WAL dir (ETCD_WAL_DIR, --wal-dir) is used by the
                               steps and the backup; a config file (ETCD_CONFIG_FILE,
                               --config-file) is refused.
                               ETCD_VERSION is left out (etcd 3.4 reads it as --version).
  ETCD_MIGRATE_FAULT,          tests only: kill migrate, fill the disk, or pause at a
  ETCD_MIGRATE_FAULT_FILL,       named point (docs/backups-and-failures.md: "Failure");
  ETCD_MIGRATE_FAULT_PAUSE       inert unless set

Exit codes:
  0  migrated (or nothing to do), then etcd was exec'd (or --exec=false)
  1  a step failed: version.txt records the last completed step; rerun to retry
  2  bad configuration or input: nothing was touched`

func newRootCommandWith(getenv func(string) string, run runFunc) *cobra.Command {
	o := &options{all: pflag.NewFlagSet("migrate", pflag.ContinueOnError)}
	o.addFlags(o.all)
	root := &cobra.Command{
		Use:           "migrate [flags] [-- ETCD-ARGS...]",
		Short:         "Migrate an etcd data dir to the target version, then exec that etcd",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			before := args
			if n := cmd.ArgsLenAtDash(); n >= 0 {
				before = args[:n]
			}
			if len(before) > 0 {
				return &migrate.InputError{Err: unknownCommand(cmd, before[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := o.prepare(cmd, cmdRun, getenv, args)
			if err != nil {
				return err
			}
			return run(cmd.Context(), r, args)
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SuggestionsMinimumDistance = 2
	root.Flags().AddFlagSet(o.all)
	// plan and status take the run's own command line: an operator previews a
	// run by putting the command's name in front of it.
	plan, status := newPlanCommand(o, getenv), newStatusCommand(o, getenv)
	plan.Flags().AddFlagSet(o.all)
	status.Flags().AddFlagSet(o.all)
	root.AddCommand(plan, status)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &migrate.InputError{Err: err} })
	return root
}

// prepare resolves a command line (flags, environment, the etcd args after "--")
// for what which needs, gives the config its logger (stderr) and logs what the
// settings leave out. For a run and a plan, it refuses etcd args that would serve
// another data dir.
func (o *options) prepare(cmd *cobra.Command, which command, getenv func(string) string, args []string) (resolved, error) {
	r, err := o.resolveFor(which, o.all, getenv, args)
	if err != nil {
		return r, err
	}
	log := newLogger(cmd.ErrOrStderr(), r.logFmt, r.logLvl)
	r.cfg.Logger = log
	if which == cmdStatus {
		return r, nil
	}
	for _, s := range r.stripped {
		log.Info("ETCD_CREDS flag left out of the steps' etcd", "flag", s.Flag, "why", s.Why)
	}
	if r.cfg.Creds.What == etcdconfig.PeerTLSWhat && len(r.cfg.ExtraArgs) > 0 {
		log.Info("the steps' etcd gets the peer TLS flags given after -- (ETCD_CREDS is unset)", "flags", len(r.cfg.ExtraArgs))
	}
	if n := r.cfg.Served.Name; n != "" && n != r.cfg.Name {
		log.Warn("the steps run another member name than the served etcd", "steps", r.cfg.Name, "served", n)
	}
	if len(r.unusedClientURLs) > 0 {
		log.Info("LISTEN_CLIENT_URLS lists several URLs: the steps' private listener uses the first loopback one", "used", r.cfg.ClientURL, "not_used", r.unusedClientURLs)
	}
	if r.etcdImage != "" {
		// The upgrade document's ETCD_IMAGE names the image the manifest runs;
		// this binary is already that image.
		log.Info("ETCD_IMAGE is not used: the image is the manifest's, and TARGET_VERSION picks the etcd it runs", "etcd_image", r.etcdImage)
	}
	if r.exec {
		if err := r.cfg.CheckExecArgs(args, getenv); err != nil {
			return r, err
		}
	}
	return r, nil
}

// unknownCommand is the error for a word before "--" that names no command.
func unknownCommand(cmd *cobra.Command, arg string) error {
	hint := ""
	if s := cmd.SuggestionsFor(arg); len(s) > 0 {
		hint = fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return fmt.Errorf("unknown command %q for %q%s: the commands are plan and status; etcd arguments go after --", arg, cmd.Name(), hint)
}

// noArgs refuses arguments to a command before "--" (exit 2); those after it are
// the served etcd's.
func noArgs(cmd *cobra.Command, args []string) error {
	if n := cmd.ArgsLenAtDash(); n >= 0 {
		args = args[:n]
	}
	if len(args) > 0 {
		return &migrate.InputError{Err: fmt.Errorf("%s takes no arguments before --, got %q", cmd.CommandPath(), args)}
	}
	return nil
}

func newPlanCommand(o *options, getenv func(string) string) *cobra.Command {
	return &cobra.Command{
		Use:   "plan [flags] [-- ETCD-ARGS...]",
		Short: "Print the steps migrate would take; change nothing",
		Long: `plan prints the steps a run with the same flags, variables and etcd args would take,
and changes nothing. It checks what a run checks of the bin dir before anything is
touched (the binaries the steps run, and that the target etcd accepts the args after
--) and exits 2, after printing the steps, where a run would refuse.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := o.prepare(cmd, cmdPlan, getenv, args)
			if err != nil {
				return err
			}
			st, plan, err := r.cfg.Plan()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "current: %s\ntarget:  %s\n", currentText(st), r.cfg.Target)
			if len(plan) == 0 {
				fmt.Fprintln(w, "nothing to do")
			}
			for i, s := range plan {
				fmt.Fprintf(w, "step %d: %s\n", i+1, s)
			}
			return r.cfg.CheckBinaries(plan)
		},
	}
}

func newStatusCommand(o *options, getenv func(string) string) *cobra.Command {
	return &cobra.Command{
		Use:   "status [flags] [-- ETCD-ARGS...]",
		Short: "Print what version.txt says and what the data says",
		Long: `status prints what version.txt says and what the data says; it changes nothing.
It takes a run's flags, variables and etcd args (the data dir as a run finds it) and
needs no target. It exits 2, after printing what it could read, when the data dir
does not exist, is not a directory, or its version.txt is malformed or contradicted
by the data.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := o.prepare(cmd, cmdStatus, getenv, args)
			if err != nil {
				return err
			}
			dataDir := r.cfg.DataDir
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "data dir:    %s\n", dataDir)
			fi, serr := os.Stat(dataDir)
			if errors.Is(serr, os.ErrNotExist) {
				fmt.Fprintf(w, "data:        data dir does not exist\n")
				return &migrate.InputError{Err: fmt.Errorf("data dir %s does not exist: check --data-dir/DATA_DIRECTORY (a migrate run would start a new data dir there)", dataDir)}
			}
			if serr == nil && !fi.IsDir() {
				fmt.Fprintf(w, "data:        not a directory\n")
				return &migrate.InputError{Err: fmt.Errorf("data dir %s is not a directory: point --data-dir (DATA_DIRECTORY) at the etcd data directory", dataDir)}
			}
			st, err := r.cfg.Current()
			vf := "missing"
			if st.VersionFile != nil {
				vf = st.VersionFile.String()
			} else if st.VersionFileErr != nil {
				vf = "malformed"
				err = &migrate.InputError{Err: fmt.Errorf("malformed version.txt: %w", st.VersionFileErr)}
			}
			fmt.Fprintf(w, "version.txt: %s\n", vf)
			if st.Detected.Empty || st.Detected.Storage != "" {
				fmt.Fprintf(w, "data:        %s\n", st.Detected)
			}
			if st.Current != nil && (st.VersionFile == nil || st.CutShort()) {
				fmt.Fprintf(w, "current:     %s\n", currentText(st))
			}
			if st.Detected.Storage == versionfile.StorageEtcd3 {
				if o, oerr := datadir.ReadOffline(dataDir); oerr == nil {
					fmt.Fprintf(w, "auth:        %s\n", o.Auth)
				}
			}
			if !st.Detected.Empty && st.Detected.Storage != "" {
				if ms, merr := migrate.Members(dataDir, "", st.Detected); merr == nil {
					fmt.Fprintf(w, "members:     %s\n", membersText(ms))
				}
			}
			printBackup(w, dataDir)
			return err
		},
	}
}

// membersText lists the members a backend records: name, ID and peer URLs each.
func membersText(ms []v3backend.Member) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%s %s %s", m.Name, m.ID, strings.Join(m.PeerURLs, ","))
		if m.Learner {
			parts[i] += " (learner)"
		}
	}
	return fmt.Sprintf("%d (%s)", len(ms), strings.Join(parts, "; "))
}

// printBackup says what the backup beside dataDir holds and what happens to it:
// the copy of a migration not completed is kept; a completed migration's copy is
// replaced by the next migration's.
func printBackup(w io.Writer, dataDir string) {
	bs := backup.Inspect(dataDir)
	if bs.Exists {
		bv := "no version.txt"
		if p, err := versionfile.Read(bs.Path); err == nil {
			bv = "version.txt " + p.String()
		}
		fmt.Fprintf(w, "backup:      %s (%s)\n", bs.Path, bv)
		r := bs.Record
		switch {
		case r == nil && bs.RecordErr != nil:
			fmt.Fprintf(w, "backup of:   unknown (%v): the next migration replaces it\n", bs.RecordErr)
		case r == nil:
			fmt.Fprintln(w, "backup of:   unknown (no record): the next migration replaces it")
		case r.Completed:
			fmt.Fprintf(w, "backup of:   the data at %s before the migration to %s, taken %s; completed at %s: the next migration replaces it\n", r.Before, r.Target, r.Taken.Format(time.RFC3339), r.CompletedAt)
		default:
			fmt.Fprintf(w, "backup of:   the data at %s before the migration to %s, taken %s; not completed: kept until a run reaches its target\n", r.Before, r.Target, r.Taken.Format(time.RFC3339))
		}
	}
	if left, _ := filepath.Glob(bs.Path + ".tmp-*"); len(left) > 0 {
		fmt.Fprintf(w, "backup temp: %s left by an interrupted copy (the next run removes it)\n", strings.Join(left, ", "))
	}
}

func currentText(st migrate.Status) string {
	if st.Current == nil {
		if st.VersionFile != nil {
			return "empty data dir (version.txt says " + st.VersionFile.String() + ")"
		}
		return "empty data dir"
	}
	if st.CutShort() {
		return fmt.Sprintf("%s (version.txt says %s, but the data is %s: a step was cut short after it changed what the data records)", st.Current, st.VersionFile, st.Detected)
	}
	if st.Assumed {
		return fmt.Sprintf("%s (no version.txt; v2-only data does not record the etcd that wrote it: taken as the oldest bundled etcd 2.x)", st.Current)
	}
	if st.VersionFile == nil {
		return fmt.Sprintf("%s (no version.txt; detected from the data, whose backend records the minor only)", st.Current)
	}
	return st.Current.String()
}

// ExitCode maps errors to the documented exit codes (2 bad configuration or input, nothing
// touched; 1 a step failed) and prints the one "migrate: error:" line to stderr.
func ExitCode(err error) int { return exitCode(err) }

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "migrate: error: "+err.Error())
	var ie *migrate.InputError
	if errors.As(err, &ie) {
		return 2
	}
	return 1
}
