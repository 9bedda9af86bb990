package app

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/etcd-migrate/etcd-migrate/pkg/etcdconfig"
)

// docExample is one migrate command line a doc shows, with the environment
// variables its example sets.
type docExample struct {
	where string // file:line
	args  []string
	env   []string
	// fenced: from a code block (every one must parse); inline spans that read
	// as prose are skipped.
	fenced bool
}

var (
	// yamlEnv: "- {name: X, value: ...}" and "- name: X"; shEnv: "-e X=", "--env X=".
	yamlEnv = regexp.MustCompile(`(?:\{name:|- name:)\s*([A-Z][A-Z0-9_]*)`)
	shEnv   = regexp.MustCompile(`(?:^|\s)(?:-e|--env)\s+([A-Z][A-Z0-9_]*)=`)
	// A variable assigned before the command on a shell line.
	assign     = regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=`)
	inlineCode = regexp.MustCompile("`([^`]+)`")
)

// isMigrateWord says a word runs migrate: the binary by name or path, or (in a
// docker/podman run line, image) the image, whose entrypoint it is.
func isMigrateWord(tok string, image bool) bool {
	return tok == "migrate" || strings.HasSuffix(tok, "/migrate") || image && strings.Contains(tok, "etcd-migrate:")
}

// shellWords splits a shell line into words: quotes grouped and removed, a
// comment dropped, and the words after a command separator left out.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	in, quote := false, rune(0)
	flush := func() {
		if in {
			words = append(words, cur.String())
		}
		cur.Reset()
		in = false
	}
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t':
			flush()
		case r == '#' && !in:
			flush()
			return words
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	flush()
	for i, w := range words {
		if w == "|" || w == "&&" || w == ";" || w == "||" {
			return words[:i]
		}
	}
	return words
}

// migrateArgs are the words after the migrate word, or nil when there is none.
func migrateArgs(words []string) ([]string, []string, bool) {
	image := len(words) > 1 && (words[0] == "docker" || words[0] == "podman") && words[1] == "run"
	for i, w := range words {
		if isMigrateWord(w, image) {
			var env []string
			for _, b := range words[:i] {
				if m := assign.FindStringSubmatch(b); m != nil {
					env = append(env, m[1])
				}
			}
			return words[i+1:], env, true
		}
	}
	return nil, nil, false
}

// yamlCommands are the command lists of a YAML block: the flow form
// "command: [a, b, ...]" (over several lines) and the block form "command:" then
// "- a" lines.
func yamlCommands(lines []string) [][]string {
	var out [][]string
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		rest, ok := strings.CutPrefix(l, "command:")
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "[") {
			flow := rest
			for !strings.Contains(flow, "]") && i+1 < len(lines) {
				i++
				flow += " " + strings.TrimSpace(lines[i])
			}
			flow, _, _ = strings.Cut(strings.TrimPrefix(flow, "["), "]")
			out = append(out, flowItems(flow))
			continue
		}
		var items []string
		for i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), "- ") && !strings.Contains(lines[i+1], "name:") {
			i++
			items = append(items, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[i]), "- ")))
		}
		out = append(out, items)
	}
	return out
}

// flowItems splits a YAML flow sequence's content as YAML does: a comma ends a
// plain item (so "--initial-cluster=a=u,b=v" unquoted is two items, as the kubelet
// would get them); a quoted item keeps its commas.
func flowItems(flow string) []string {
	var items []string
	var cur strings.Builder
	quote := rune(0)
	for _, r := range flow {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote = r
		case r == ',':
			if it := strings.TrimSpace(cur.String()); it != "" {
				items = append(items, it)
			}
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	if it := strings.TrimSpace(cur.String()); it != "" {
		items = append(items, it)
	}
	return items
}

// docExamples collects the migrate command lines of README.md and docs/*.md: those
// of code blocks (shell lines, YAML commands), with the variables their block sets,
// and the inline code spans that start with "migrate".
func docExamples(t *testing.T) []docExample {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(repoRoot, "README.md"))
	var out []docExample
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(f, repoRoot+"/")
		lines := strings.Split(string(b), "\n")
		var prose []string
		for i := 0; i < len(lines); i++ {
			if !strings.HasPrefix(strings.TrimSpace(lines[i]), "```") {
				prose = append(prose, lines[i])
				continue
			}
			lang, start := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[i]), "```")), i+1
			j := start
			for j < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[j]), "```") {
				j++
			}
			block := lines[start:j]
			i = j
			var blockEnv []string
			for _, l := range block {
				for _, m := range yamlEnv.FindAllStringSubmatch(l, -1) {
					blockEnv = append(blockEnv, m[1])
				}
				for _, m := range shEnv.FindAllStringSubmatch(l, -1) {
					blockEnv = append(blockEnv, m[1])
				}
			}
			where := func(k int) string { return name + ":" + strconv.Itoa(start+k+1) }
			if lang == "yaml" || lang == "yml" {
				for _, cmd := range yamlCommands(block) {
					if args, _, ok := migrateArgs(cmd); ok {
						out = append(out, docExample{where: name + " (yaml)", args: args, env: blockEnv, fenced: true})
					}
				}
				continue
			}
			// Shell: join continued lines.
			for k := 0; k < len(block); k++ {
				line, first := block[k], k
				for strings.HasSuffix(strings.TrimSpace(line), "\\") && k+1 < len(block) {
					k++
					line = strings.TrimSuffix(strings.TrimSpace(line), "\\") + " " + block[k]
				}
				if args, env, ok := migrateArgs(shellWords(line)); ok {
					out = append(out, docExample{where: where(first), args: args, env: append(env, blockEnv...), fenced: true})
				}
			}
		}
		for _, m := range inlineCode.FindAllStringSubmatch(strings.Join(prose, " "), -1) {
			words := strings.Fields(m[1])
			if len(words) == 0 || words[0] != "migrate" {
				continue
			}
			out = append(out, docExample{where: name + ": `" + m[1] + "`", args: words[1:]})
		}
	}
	return out
}

// placeholder says a word stands for something the reader fills in.
func placeholder(w string) bool {
	return strings.ContainsAny(w, "…<>[]") || strings.Contains(w, "...")
}

// proseSpan says an inline span that starts with "migrate" is prose or an error
// message, not a command line: a word before "--" that is neither a flag nor a
// command, or the command line's synopsis.
func proseSpan(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "[flags]" {
			return true
		}
		if !strings.HasPrefix(a, "-") && a != "plan" && a != "status" && !placeholder(a) {
			return true
		}
	}
	return false
}

// TestDocsMigrateExamples: every migrate command line the docs show parses
// through the real command: its command exists, every flag before "--" is one
// migrate takes (plan and status take the run's), its values have the flag's
// type, the etcd args after "--" are a command line etcd's syntax accepts; every
// variable the examples set is one migrate (or the etcd it execs) reads.
func TestDocsMigrateExamples(t *testing.T) {
	own, served := codeEnv(t)
	examples := docExamples(t)
	fenced := 0
	for _, ex := range examples {
		if ex.fenced {
			fenced++
		}
		var args []string
		for _, a := range ex.args {
			if !placeholder(a) {
				args = append(args, a)
			}
		}
		if !ex.fenced && proseSpan(ex.args) {
			continue
		}
		root := newRootCommandWith(func(string) string { return "" }, func(context.Context, resolved, []string) error { return nil })
		cmd, rest, err := root.Find(args)
		if err != nil {
			t.Errorf("%s: migrate %q: %v", ex.where, args, err)
			continue
		}
		cmd.InitDefaultHelpFlag()
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("%s: migrate %q: %v", ex.where, args, err)
			continue
		}
		pos := cmd.Flags().Args()
		if err := cmd.ValidateArgs(pos); err != nil {
			t.Errorf("%s: migrate %q: %v", ex.where, args, err)
			continue
		}
		var etcdArgs []string
		if n := cmd.Flags().ArgsLenAtDash(); n >= 0 {
			etcdArgs = pos[n:]
		}
		if _, err := etcdconfig.ParseServed(etcdArgs, func(string) string { return "" }); err != nil {
			t.Errorf("%s: etcd args %q: %v", ex.where, etcdArgs, err)
		}
		seen := map[string]bool{}
		for _, v := range ex.env {
			if seen[v] {
				continue
			}
			seen[v] = true
			if !own[v] && !served[v] && !etcdconfig.IsFlagEnv(v) {
				t.Errorf("%s: the example sets %s, which migrate does not read", ex.where, v)
			}
		}
	}
	if fenced < 5 {
		t.Fatalf("found %d migrate command lines in code blocks, want the README's and docs' (>= 5): %+v", fenced, examples)
	}
	t.Logf("%d migrate examples checked (%d in code blocks)", len(examples), fenced)
}
