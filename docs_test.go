package flaskedge_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/caddymodule/edgecors"
	"github.com/flaskedge/flaskedge/caddymodule/flasksession"
	"github.com/flaskedge/flaskedge/caddymodule/flasksocketio"
	"github.com/flaskedge/flaskedge/caddymodule/socketioclient"
	"github.com/flaskedge/flaskedge/caddymodule/socketiodashboard"
	"github.com/flaskedge/flaskedge/caddymodule/socketioproxy"
)

// directiveDoc is what docs/REFERENCE.md says of one directive: the
// subdirectives of its syntax block and of its table.
type directiveDoc struct {
	text          string
	syntax, table []string
}

// referenceDocs reads docs/REFERENCE.md by "## `directive`" section.
func referenceDocs(t *testing.T) map[string]directiveDoc {
	t.Helper()
	raw, err := os.ReadFile("docs/REFERENCE.md")
	require.NoError(t, err)
	docs := map[string]directiveDoc{}
	sections := regexp.MustCompile("(?m)^## ").Split(string(raw), -1)
	heading := regexp.MustCompile("^`([a-z_]+)`\n")
	for _, sec := range sections {
		m := heading.FindStringSubmatch(sec)
		if m == nil {
			continue
		}
		d := directiveDoc{text: sec}
		// The first caddyfile block: its subdirectives are the words
		// that start a line one tab in.
		if _, rest, ok := strings.Cut(sec, "```caddyfile\n"); ok {
			block, _, _ := strings.Cut(rest, "```")
			for _, line := range strings.Split(block, "\n") {
				if !strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "\t\t") {
					continue
				}
				word := strings.Fields(line)[0]
				if word != "}" && !strings.HasPrefix(word, "<") {
					d.syntax = append(d.syntax, word)
				}
			}
		}
		// The subdirective table: the rows after "| subdirective |".
		if _, rest, ok := strings.Cut(sec, "\n| subdirective |"); ok {
			for _, line := range strings.Split(rest, "\n")[2:] {
				if !strings.HasPrefix(line, "|") {
					break
				}
				cell := strings.TrimSpace(strings.Split(line, "|")[1])
				if strings.HasPrefix(cell, "`") {
					d.table = append(d.table, strings.Fields(strings.Trim(cell, "`"))[0])
				}
			}
		}
		slices.Sort(d.syntax)
		d.syntax = slices.Compact(d.syntax)
		slices.Sort(d.table)
		d.table = slices.Compact(d.table)
		docs[m[1]] = d
	}
	return docs
}

// docs/REFERENCE.md lists, for each directive, exactly the subdirectives
// its Caddyfile parser has, in its syntax block and in its table: one
// added to a parser and not documented, or documented and gone, fails.
func TestReferenceListsEverySubdirectiveOfTheParsers(t *testing.T) {
	docs := referenceDocs(t)
	for directive, parser := range map[string][]string{
		"edge_cors":          edgecors.Subdirectives(),
		"flask_session":      flasksession.Subdirectives(),
		"socketio_client":    socketioclient.Subdirectives(),
		"socketio_dashboard": socketiodashboard.Subdirectives(),
		"socketio_proxy":     socketioproxy.Subdirectives(),
	} {
		d, ok := docs[directive]
		if !assert.True(t, ok, "docs/REFERENCE.md has no section ## `%s`", directive) {
			continue
		}
		assert.Equal(t, parser, d.syntax, "%s: the syntax block in docs/REFERENCE.md against the parser", directive)
		assert.Equal(t, parser, d.table, "%s: the table in docs/REFERENCE.md against the parser", directive)
	}

	// flask_socketio documents its own subdirectives and refers to the
	// modules' for the rest: together they are all it takes.
	d := docs["flask_socketio"]
	assert.Equal(t, d.syntax, d.table, "flask_socketio: syntax block and table")
	all := flasksocketio.Subdirectives()
	documented := slices.Concat(d.table, edgecors.Subdirectives(), flasksession.Subdirectives(), socketioproxy.Subdirectives())
	for _, name := range all {
		assert.Contains(t, documented, name, "flask_socketio takes %s, which no section of docs/REFERENCE.md documents", name)
	}
	for _, name := range d.table {
		assert.Contains(t, all, name, "docs/REFERENCE.md documents flask_socketio's %s, which it does not take", name)
	}
	for _, name := range []string{"engineio_path", "max_age"} {
		assert.NotContains(t, all, name)
		assert.Contains(t, d.text, "`"+name+"`", "flask_socketio refuses %s; docs/REFERENCE.md must say what to write instead", name)
	}
}

// The README is what a user reads first: short, with the example whole.
func TestREADMEIsShortAndShowsTheExampleWhole(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	assert.LessOrEqual(t, len(readme), 12*1024, "README.md is over 12 KB; move detail to docs/")
	example, err := os.ReadFile("examples/Caddyfile")
	require.NoError(t, err)
	assert.Contains(t, string(readme), "```caddyfile\n"+string(example)+"```", "README.md must show examples/Caddyfile whole, as it is")
	assert.Contains(t, string(readme), "flask_socketio ", "the quick start uses flask_socketio")
}

// Every relative link of the README and docs/ names a file that exists,
// and every link to a heading of a doc names one of its headings.
func TestDocLinksResolve(t *testing.T) {
	files, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	files = append(files, "README.md")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, file := range files {
		raw, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, m := range link.FindAllStringSubmatch(string(raw), -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			resolved := file
			if path != "" {
				resolved = filepath.Join(filepath.Dir(file), path)
				if _, err := os.Stat(resolved); err != nil {
					t.Errorf("%s links to %s, which does not exist", file, target)
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(resolved, ".md") {
				doc, err := os.ReadFile(resolved)
				require.NoError(t, err)
				if !slices.Contains(anchors(string(doc)), anchor) {
					t.Errorf("%s links to %s, which has no heading #%s", file, target, anchor)
				}
			}
		}
	}
}

// anchors are the GitHub anchors of a Markdown document's headings.
func anchors(doc string) []string {
	var out []string
	inCode := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}
