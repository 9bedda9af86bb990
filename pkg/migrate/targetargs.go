package migrate

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-version"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdconfig"
	"github.com/etcd-migrate/etcd-migrate/pkg/etcdproc"
	"github.com/etcd-migrate/etcd-migrate/pkg/steprun"
)

// checkTargetAccepts runs the target etcd on the command line it will be exec'd with,
// plus --version: etcd parses every flag and exits without starting (measured on
// 3.4.13-3.7.3: exit 0 and "etcd Version:", or exit 2 and "flag provided but not
// defined: -x" for a flag it does not know). The ETCD_<FLAG> variables it would read
// are not parsed before --version exits, so those naming a flag the target lists go
// on the check's command line as that flag, to have their values checked too. The
// deprecation notices of the target's --help for the flags given are logged; a flag
// the target refuses is named with the replacement an older bundled etcd's notice
// gives, if any.
func (c *Config) checkTargetAccepts() error {
	start := time.Now()
	bin := steprun.EtcdBinary(c.BinDir, c.Target.Version)
	args := c.execArgs(c.ExecArgs)
	env := c.execEnv(args, false)
	// The target's --help (one more start of etcd) is needed only to turn
	// ETCD_<FLAG> variables into flags; the deprecations it names are logged
	// by logTargetDeprecations when steps run.
	var help map[string]string
	if hasEtcdVars(env) {
		var err error
		if help, err = etcdHelp(bin); err != nil {
			return err
		}
	}
	target := "etcd " + c.Target.Version.String()
	fromEnv := map[string]string{} // flag -> ETCD_X=v, for messages
	var envFlags []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		name, ok := envFlag(k)
		if !ok || v == "" || name == "version" || help == nil {
			continue // etcd ignores ETCD_VERSION
		}
		if _, known := help[name]; known {
			envFlags = append(envFlags, "--"+name+"="+v)
			fromEnv[name] = kv
			continue
		}
		if ver, notice := c.olderNotice(name); notice != "" || ver != "" {
			// etcd only warns about a variable naming no flag, and ignores it.
			c.Logger.Warn("the target etcd ignores this variable: it has no such flag", "variable", k, "etcd", c.Target.Version.String(),
				"known_to", ver, "notice", notice)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), versionCheckTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append(append([]string(nil), args...), envFlags...), "--version")...)
	cmd.Env = env
	cmd.WaitDelay = time.Second
	etcdproc.DiesWithMigrate(cmd)
	out, runErr := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Errorf("%s did not answer `%s <args after --> --version` within %s", bin, target, versionCheckTimeout)
	}
	if runErr == nil && strings.Contains(string(out), "etcd Version:") {
		// The same output names the binary's version: the target needs no
		// version check of its own.
		if err := versionMatches(bin, "etcd --version", "etcd Version:", string(out)); err != nil {
			return err
		}
		c.Logger.Info("the target etcd accepts its command line", "etcd", c.Target.Version.String(), "args", len(args),
			"variables_checked", len(envFlags), "duration_ms", time.Since(start).Milliseconds())
		return nil
	}
	cause := etcdErrorLine(string(out))
	if cause == "" && runErr != nil {
		cause = runErr.Error()
	}
	fix := "fix the args after --"
	if m := flagInError.FindStringSubmatch(cause); m != nil {
		name := m[1]
		what := "--" + name + " after --"
		if kv, ok := fromEnv[name]; ok {
			what = kv + " in the environment"
		}
		fix = "fix " + what
		if undefinedFlag.MatchString(cause) {
			fix = "remove " + what
			ver, notice := c.olderNotice(name)
			if i := strings.Index(strings.ToLower(notice), "deprecat"); i >= 0 {
				// The deprecation notice an older etcd gives, from the sentence
				// that starts it.
				if j := strings.LastIndex(notice[:i], ". "); j >= 0 {
					notice = notice[j+2:]
				}
				fix = fmt.Sprintf("remove %s (etcd %s: %q)", what, ver, notice)
				if repl := replacement(notice); repl != "" {
					fix = fmt.Sprintf("replace %s with %s (etcd %s: %q)", what, repl, ver, notice)
				}
			} else if ver != "" {
				fix = fmt.Sprintf("remove %s (a flag of etcd %s, not of %s)", what, ver, target)
			}
		}
	}
	return fmt.Errorf("the target %s does not accept its command line: %s: %s; nothing was changed", target, cause, fix)
}

var (
	undefinedFlag = regexp.MustCompile(`flag provided but not defined: -+([A-Za-z0-9-]+)`)
	// The flag Go's flag package names in its errors: "flag provided but not
	// defined: -x", "invalid value "v" for flag -x: ...", "invalid boolean value
	// "v" for -x: ...", "flag needs an argument: -x".
	flagInError = regexp.MustCompile(`(?:defined:|for flag|for|argument:) -+([A-Za-z0-9-]+)`)
	// etcd's notices: "Use '--x' instead", "Use --x instead", "Use 'x' instead".
	useInstead = regexp.MustCompile(`Use '?(-*[^' ]+)'? instead`)
	helpFlag   = regexp.MustCompile(`^\s+--([a-z0-9-]+)`)
)

func replacement(notice string) string {
	m := useInstead.FindStringSubmatch(notice)
	if m == nil {
		return ""
	}
	if !strings.HasPrefix(m[1], "-") {
		return "--" + m[1]
	}
	return m[1]
}

// hasEtcdVars says whether env sets an ETCD_<FLAG> variable other than
// ETCD_VERSION (which etcd ignores).
func hasEtcdVars(env []string) bool {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if name, ok := envFlag(k); ok && v != "" && name != "version" {
			return true
		}
	}
	return false
}

// envFlag is the flag an ETCD_<FLAG> variable stands for.
func envFlag(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "ETCD_")
	if !ok || rest == "" {
		return "", false
	}
	return strings.ReplaceAll(strings.ToLower(rest), "_", "-"), true
}

// logTargetDeprecations logs the target's deprecation notices for the settings it
// is given (its --help; etcd logs its own at start too).
func (c *Config) logTargetDeprecations() {
	bin := steprun.EtcdBinary(c.BinDir, c.Target.Version)
	help, err := etcdHelp(bin)
	if err != nil {
		return // checkTargetAccepts accepted the binary; the notices are extra
	}
	args := c.execArgs(c.ExecArgs)
	fromEnv := map[string]string{}
	for _, kv := range c.execEnv(args, false) {
		k, v, _ := strings.Cut(kv, "=")
		if name, ok := envFlag(k); ok && v != "" && name != "version" {
			if _, known := help[name]; known {
				fromEnv[name] = kv
			}
		}
	}
	c.logDeprecations(help, args, fromEnv)
}

// logDeprecations logs, once per flag, the target's notice for each given flag its
// --help calls deprecated.
func (c *Config) logDeprecations(help map[string]string, args []string, fromEnv map[string]string) {
	seen := map[string]bool{}
	var names []string
	split, _ := etcdconfig.Split(args) // accepted by the target: it splits
	for _, a := range split {
		names = append(names, a.Name)
	}
	envNames := make([]string, 0, len(fromEnv))
	for n := range fromEnv {
		envNames = append(envNames, n)
	}
	sort.Strings(envNames)
	for _, n := range append(names, envNames...) {
		desc, ok := help[n]
		if !ok || seen[n] || !strings.Contains(strings.ToLower(desc), "deprecat") {
			continue
		}
		seen[n] = true
		given := "--" + n
		if kv, ok := fromEnv[n]; ok {
			given, _, _ = strings.Cut(kv, "=")
		}
		c.Logger.Warn("the target etcd deprecates a setting it is given", "setting", given, "etcd", c.Target.Version.String(), "notice", desc)
	}
}

// olderNotice is what the other bundled etcds' --help say of a flag, the newest
// first that lists it: its version and its description ("" when none does).
func (c *Config) olderNotice(name string) (string, string) {
	vs := append([]*version.Version(nil), c.Bundled...)
	sort.Slice(vs, func(i, j int) bool { return vs[i].GreaterThan(vs[j]) })
	for _, v := range vs {
		if v.Equal(c.Target.Version) {
			continue
		}
		help, err := etcdHelp(steprun.EtcdBinary(c.BinDir, v))
		if err != nil {
			continue
		}
		if desc, ok := help[name]; ok {
			return v.String(), desc
		}
	}
	return "", ""
}

var (
	helpMu    sync.Mutex
	helpCache = map[string]map[string]string{}
)

// etcdHelp is the flags `etcd --help` lists, each with its description (read once
// per binary).
func etcdHelp(bin string) (map[string]string, error) {
	helpMu.Lock()
	defer helpMu.Unlock()
	if h, ok := helpCache[bin]; ok {
		return h, nil
	}
	h, err := readEtcdHelp(bin)
	if err == nil {
		helpCache[bin] = h
	}
	return h, err
}

func readEtcdHelp(bin string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), versionCheckTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--help")
	cmd.Env = etcdproc.ChildEnv()
	cmd.WaitDelay = time.Second
	etcdproc.DiesWithMigrate(cmd)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil || (err != nil && len(out) == 0) {
		return nil, fmt.Errorf("`%s --help` failed (%v): it is not a working etcd binary; rebuild it (make etcd-binaries) or fix --bin-dir", bin, err)
	}
	flags := map[string]string{}
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if m := helpFlag.FindStringSubmatch(line); m != nil {
			cur = m[1]
			flags[cur] = ""
			continue
		}
		if cur == "" || strings.TrimSpace(line) == "" || !strings.HasPrefix(line, "    ") {
			cur = ""
			continue
		}
		flags[cur] = strings.TrimSpace(flags[cur] + " " + strings.TrimSpace(line))
	}
	return flags, nil
}

// etcdErrorLine is the cause etcd printed before exiting, picked from its whole
// output by what explains a refused command line, whatever the release's output
// style (the outputs of every bundled etcd are in testdata/etcd-flag-errors):
//  1. Go's flag errors ("flag provided but not defined: -x", "invalid value ...
//     for flag -x: ...", "flag needs an argument: -x") and etcd's "... is not a
//     valid flag", wherever they are: 3.4.25 prints a golang/protobuf
//     deprecation WARNING first;
//  2. else the error of a JSON log line above info (3.5+);
//  3. else the message of a capnslog error line ("... E | etcdmain: ...", 2.x-3.4);
//  4. else the first line that is not a known preamble (that WARNING, its
//     indented continuation, a usage text).
func etcdErrorLine(out string) string {
	var jsonErr, capnErr, plain string
	for _, raw := range strings.Split(out, "\n") {
		l := strings.TrimSpace(raw)
		if l == "" {
			continue
		}
		msg := l
		if strings.HasPrefix(l, "{") {
			var rec struct{ Level, Msg, Error string }
			if json.Unmarshal([]byte(l), &rec) == nil {
				if rec.Level == "info" || rec.Level == "debug" {
					continue
				}
				msg = rec.Msg
				if rec.Error != "" {
					msg = rec.Error
				}
				if jsonErr == "" {
					jsonErr = msg
				}
			}
		} else if m := capnslogLine.FindStringSubmatch(l); m != nil {
			// capnslog: "2026-... E | etcdmain: error verifying flags, 'y' is not ..."
			msg = m[2]
			if _, rest, ok := strings.Cut(msg, ": "); ok {
				msg = rest
			}
			if capnErr == "" && (m[1] == "E" || m[1] == "C") {
				capnErr = msg
			}
		} else if plain == "" && !preamble(raw) {
			plain = l
		}
		if flagProblem.MatchString(msg) {
			return msg
		}
	}
	for _, c := range []string{jsonErr, capnErr, plain} {
		if c != "" {
			return c
		}
	}
	return ""
}

var (
	// A line that says what is wrong with a flag (Go's flag package, etcd's
	// positional-argument check).
	flagProblem  = regexp.MustCompile(`flag provided but not defined: -|invalid (?:boolean )?value .* for (?:flag )?-|flag needs an argument: -|is not a valid flag`)
	capnslogLine = regexp.MustCompile(`^\d{4}-\d\d-\d\d [0-9:.]+ ([A-Z]) \| (.*)$`)
)

// preamble says a line of etcd's output explains nothing about a refusal: the
// golang/protobuf deprecation WARNING 3.4.25 prints first (and its indented
// continuation), a usage text.
func preamble(line string) bool {
	l := strings.TrimSpace(line)
	return strings.HasPrefix(line, "\t") || strings.HasPrefix(line, " ") ||
		strings.HasPrefix(l, "WARNING: Package ") || strings.EqualFold(strings.TrimSuffix(l, ":"), "usage") ||
		strings.HasPrefix(strings.ToLower(l), "usage:")
}
