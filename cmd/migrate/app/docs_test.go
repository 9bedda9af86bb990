package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdconfig"
	"github.com/etcd-migrate/etcd-migrate/pkg/fault"
)

// repoRoot is the repository root seen from this package's directory (go test runs
// in it).
const repoRoot = "../../.."

// docsTable reads the flag/env table of docs/configuration.md ("| flag | env |
// default |"): the --flags of its first column and the variable names of its second.
func docsTable(t *testing.T) (flags, envs map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	flagRe := regexp.MustCompile("`(--[a-z][a-z0-9-]*)`")
	envRe := regexp.MustCompile(`\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*(?:_<FLAG>)?`)
	flags, envs = map[string]bool{}, map[string]bool{}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| flag | env | default |") {
			in = true
			continue
		}
		if !in {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(line, " | ")
		if len(cells) < 3 || strings.HasPrefix(line, "|---") {
			continue
		}
		for _, m := range flagRe.FindAllStringSubmatch(cells[0], -1) {
			flags[m[1]] = true
		}
		// Flags after -- in the env column are etcd's, not migrate's: only
		// variable names count there.
		for _, m := range envRe.FindAllString(cells[1], -1) {
			envs[m] = true
		}
	}
	if len(flags) == 0 || len(envs) == 0 {
		t.Fatalf("docs/configuration.md: no \"| flag | env | default |\" table found (flags %v, env %v)", flags, envs)
	}
	return flags, envs
}

// helpText is what `migrate --help` prints.
func helpText(t *testing.T) string {
	t.Helper()
	cmd := newRootCommandWith(func(string) string { return "" }, func(context.Context, resolved, []string) error { return nil })
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// helpNames returns the --flags of the help's "Flags:" section and the variables
// its "Environment" section documents (the names starting a line).
func helpNames(t *testing.T, help string) (flags, envs map[string]bool) {
	t.Helper()
	flags, envs = map[string]bool{}, map[string]bool{}
	flagLine := regexp.MustCompile(`^\s+(?:-[a-zA-Z], )?(--[a-z][a-z0-9-]*)`)
	envLine := regexp.MustCompile(`^  ([A-Z][A-Z0-9_]*(?:<FLAG>)?(?:, *[A-Z][A-Z0-9_]*)*),?(?:\s|$)`)
	section := ""
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.HasPrefix(line, "Environment"):
			section = "env"
			continue
		case strings.HasPrefix(line, "Flags:"):
			section = "flags"
			continue
		case line != "" && !strings.HasPrefix(line, " "):
			section = ""
		}
		switch section {
		case "flags":
			if m := flagLine.FindStringSubmatch(line); m != nil {
				flags[m[1]] = true
			}
		case "env":
			if m := envLine.FindStringSubmatch(line); m != nil {
				for _, n := range strings.Split(m[1], ",") {
					envs[strings.TrimSpace(n)] = true
				}
			}
		}
	}
	if len(flags) == 0 || len(envs) == 0 {
		t.Fatalf("--help: no Flags or Environment section parsed (flags %v, env %v):\n%s", flags, envs, help)
	}
	return flags, envs
}

// codeEnv returns the variables the migrate command reads itself (a recording getenv
// through a whole run of the command with every variable unset, so that every
// fallback is consulted) and, apart, the ETCD_<FLAG> variables it reads as the
// served etcd's settings (etcdconfig.ParseServed). A name counts as the command's own
// when the run reads it more often than ParseServed alone does (ETCD_NAME is both).
func codeEnv(t *testing.T) (own, served map[string]bool) {
	t.Helper()
	base := map[string]string{"DATA_DIRECTORY": t.TempDir(), "TARGET_VERSION": "3.7.3", "BUNDLED_VERSIONS": "3.4.13,3.7.3"}
	reads := map[string]int{}
	getenv := func(k string) string { reads[k]++; return base[k] }
	ran := false
	cmd := newRootCommandWith(getenv, func(context.Context, resolved, []string) error { ran = true; return nil })
	cmd.SetArgs([]string{"--exec=false"})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	if err := cmd.Execute(); err != nil || !ran {
		t.Fatalf("migrate --exec=false: ran %v, err %v, output %s", ran, err, out.String())
	}
	servedReads := map[string]int{}
	if _, err := etcdconfig.ParseServed(nil, func(k string) string { servedReads[k]++; return "" }); err != nil {
		t.Fatal(err)
	}
	own, served = map[string]bool{}, map[string]bool{}
	for k, n := range reads {
		if n > servedReads[k] {
			own[k] = true
		}
	}
	for k := range servedReads {
		served[k] = true
	}
	// pkg/fault reads its variables from the process environment (os.Getenv), not
	// through getenv: take its own constants.
	for _, k := range []string{fault.Env, fault.FillEnv, fault.PauseEnv} {
		own[k] = true
	}
	if len(served) == 0 {
		t.Fatal("ParseServed read no ETCD_<FLAG> variable: the docs' ETCD_<FLAG> row would be wrong")
	}
	return own, served
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// missing returns the keys of want not in have.
func missing(want, have map[string]bool) []string {
	var out []string
	for _, k := range sortedKeys(want) {
		if !have[k] {
			out = append(out, k)
		}
	}
	return out
}

// TestDocsFlagEnvTable: the flag/env table of docs/configuration.md, `migrate --help`
// and the code list the same names: every --flag of --help has a row and every row's
// flag is in --help; every variable the command reads is in the table and in --help's
// Environment section, and every variable those name is one the code reads (an
// etcd ETCD_<FLAG> variable counts as read when etcdconfig reads it as the served
// etcd's setting).
func TestDocsFlagEnvTable(t *testing.T) {
	docFlags, docEnv := docsTable(t)
	help := helpText(t)
	helpFlags, helpEnv := helpNames(t, help)
	own, served := codeEnv(t)

	if m := missing(helpFlags, docFlags); len(m) > 0 {
		t.Errorf("flags in --help without a row in docs/configuration.md: %v", m)
	}
	if m := missing(docFlags, helpFlags); len(m) > 0 {
		t.Errorf("flags in docs/configuration.md that --help does not list: %v", m)
	}
	// The placeholder ETCD_<FLAG> stands for the served etcd's variables.
	read := map[string]bool{"ETCD_<FLAG>": true}
	for k := range own {
		read[k] = true
	}
	for k := range served {
		read[k] = true
	}
	own["ETCD_<FLAG>"] = true
	for _, src := range []struct {
		what string
		env  map[string]bool
	}{{"docs/configuration.md's table", docEnv}, {"--help's Environment section", helpEnv}} {
		if m := missing(own, src.env); len(m) > 0 {
			t.Errorf("variables migrate reads that %s does not name: %v", src.what, m)
		}
		if m := missing(src.env, read); len(m) > 0 {
			t.Errorf("variables %s names that migrate does not read: %v", src.what, m)
		}
	}
	if t.Failed() {
		t.Logf("read by the command: %v\nread as etcd settings: %v\ndocs env: %v\nhelp env: %v",
			sortedKeys(own), sortedKeys(served), sortedKeys(docEnv), sortedKeys(helpEnv))
	}
}

// headingSlug is the anchor GitHub gives a Markdown heading: lower case, spaces to
// hyphens, punctuation other than - and _ dropped.
func headingSlug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns the heading anchors of a Markdown file (code blocks skipped).
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	fence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			fence = !fence
			continue
		}
		if !fence && strings.HasPrefix(line, "#") {
			out[headingSlug(strings.TrimLeft(line, "#"))] = true
		}
	}
	return out
}

// TestDocsLinks: every relative link in README.md and docs/*.md names a file that
// exists and, with a #fragment, a heading of that file.
func TestDocsLinks(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(repoRoot, "README.md"))
	if len(files) < 2 {
		t.Fatalf("no docs found: %v", files)
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			n++
			path, frag, _ := strings.Cut(target, "#")
			dest := f
			if path != "" {
				dest = filepath.Join(filepath.Dir(f), path)
			}
			if _, err := os.Stat(dest); err != nil {
				t.Errorf("%s: link %s: %v", filepath.Base(f), target, err)
				continue
			}
			if frag != "" && !anchors(t, dest)[frag] {
				t.Errorf("%s: link %s: no heading with anchor #%s in %s", filepath.Base(f), target, frag, dest)
			}
		}
	}
	if n == 0 {
		t.Fatal("no relative links found")
	}
}
