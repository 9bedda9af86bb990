package app

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdconfig"
	"github.com/etcd-migrate/etcd-migrate/pkg/migrate"
	"github.com/etcd-migrate/etcd-migrate/pkg/steps"
	"github.com/etcd-migrate/etcd-migrate/pkg/versionfile"
)

// EtcdName is the name under which this binary is etcd: the image's
// /usr/local/bin/etcd is a link to migrate, so kubeadm's static pod (`etcd …`), the
// GCE manifest's `exec /usr/local/bin/etcd …` and `docker run IMAGE etcd …` migrate
// the data dir they serve before etcd starts.
const EtcdName = "etcd"

// etcdDefaultName is etcd's own default --name; its default data dir is
// "<name>.etcd" in the working directory.
const etcdDefaultName = "default"

// RunAsEtcd runs migrate invoked as etcd: args are etcd's own command line. The data
// dir and member come from those args and the ETCD_* variables, as etcd reads them
// (etcd's defaults included); the target from TARGET_VERSION/TARGET_STORAGE (unset:
// the newest bundled etcd3). The run is migrate's own, with every check, and ends by
// exec'ing etcd-<target> with args. An invocation that serves no data dir (--version,
// --help, a subcommand such as gateway) goes straight to the target etcd and creates
// or touches nothing. argv0 names the bundled binaries' dir.
func RunAsEtcd(ctx context.Context, argv0 string, args []string, getenv func(string) string) error {
	binDir := binDirOf(argv0)
	if servesNoData(args) {
		v, err := etcdTarget(getenv)
		if err != nil {
			return &migrate.InputError{Err: err}
		}
		return migrate.ExecAsIs(binDir, v, args)
	}
	served, err := etcdconfig.ParseServed(args, getenv)
	if err != nil {
		return &migrate.InputError{Err: err}
	}
	name := orDefault(served.Name, etcdDefaultName)
	dataDir := orDefault(served.DataDir, name+".etcd")
	env := func(k string) string {
		switch k {
		case "DATA_DIRECTORY":
			// The image's default (/var/etcd/data) must not fight the data dir
			// etcd's own command line names.
			return dataDir
		case "TARGET_VERSION":
			if v := getenv(k); v != "" {
				return v
			}
			v, _ := etcdTarget(getenv)
			if v == nil {
				return ""
			}
			return v.String()
		}
		return getenv(k)
	}
	root := NewRootCommand(env)
	root.SetArgs(append([]string{"--bin-dir=" + binDir, "--name=" + name, "--"}, args...))
	return root.ExecuteContext(ctx)
}

// servesNoData says whether etcd's command line only prints something or runs
// another mode: etcd parses --version and --help before anything else, and a first
// argument that is no flag is a subcommand (gateway, grpc-proxy).
func servesNoData(args []string) bool {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return true
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && (name == "version" || name == "help" || name == "h") {
			return true
		}
	}
	return false
}

// etcdTarget is the bundled release TARGET_VERSION names (any patch of a bundled
// minor), or the newest bundled one when it is unset.
func etcdTarget(getenv func(string) string) (*version.Version, error) {
	bundled, err := steps.ParseBundled(orDefault(getenv("BUNDLED_VERSIONS"), defaultBundledVersions))
	if err != nil {
		return nil, err
	}
	tv := getenv("TARGET_VERSION")
	if tv == "" {
		return bundled[len(bundled)-1], nil
	}
	want, err := versionfile.ParseVersion(tv)
	if err != nil {
		return nil, err
	}
	return steps.BundledTarget(want, bundled)
}

// binDirOf is the dir of the binary as invoked (not the link's target: the
// bundled etcd-<v> are its neighbours in the image).
func binDirOf(argv0 string) string {
	p := argv0
	if !strings.Contains(argv0, "/") {
		if lp, err := exec.LookPath(argv0); err == nil {
			p = lp
		}
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return filepath.Dir(p)
}

// Main runs the binary: as etcd when invoked by that name, as the tool its first
// argument names when that is etcd, etcdctl or etcdutl (bare, versioned or a path)
// or an absolute path to an executable, else as the migrate command. The image's
// ENTRYPOINT is migrate, so `docker run IMAGE etcd …`, `docker run IMAGE etcdctl …`
// and `docker run IMAGE /bin/sh -c …` do what they do on the Kubernetes etcd image
// (which has no entrypoint), and `docker run IMAGE -- …` is migrate as before.
func Main(ctx context.Context, argv []string, getenv func(string) string) error {
	if filepath.Base(argv[0]) == EtcdName {
		return RunAsEtcd(ctx, argv[0], argv[1:], getenv)
	}
	if len(argv) > 1 {
		if tool, ok := toolArg(argv[1]); ok {
			if filepath.Base(tool) == EtcdName {
				dir := argv[0]
				if strings.Contains(tool, "/") {
					dir = tool
				}
				return RunAsEtcd(ctx, dir, argv[2:], getenv)
			}
			path := tool
			if !strings.Contains(tool, "/") {
				path = filepath.Join(binDirOf(argv[0]), tool)
			}
			return migrate.ExecCommand(path, argv[2:])
		}
	}
	root := NewRootCommand(getenv)
	root.SetArgs(argv[1:])
	return root.ExecuteContext(ctx)
}

// toolArg says whether a first argument names a command to run instead of a
// migrate command: a bundled tool's name, or an absolute path.
func toolArg(a string) (string, bool) {
	if strings.HasPrefix(a, "/") {
		return a, true
	}
	for _, t := range []string{"etcd", "etcdctl", "etcdutl"} {
		if a == t || strings.HasPrefix(a, t+"-") {
			return a, true
		}
	}
	return "", false
}
