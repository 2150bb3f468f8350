package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// AdaptGolden checks every testdata/*.caddytest file of the calling
// package, the layout of mholt/caddy-l4: a Caddyfile, a line of ten
// dashes, then either the JSON it must adapt to or, when that part does
// not start with "{", text the adapt error must contain (with its file
// and line, as `caddy adapt` prints it).
func AdaptGolden(t *testing.T) {
	t.Helper()
	files, err := filepath.Glob("testdata/*.caddytest")
	if err != nil || len(files) == 0 {
		t.Fatalf("testenv: no testdata/*.caddytest golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			caddyfileText, expected, ok := strings.Cut(string(data), "\n----------\n")
			if !ok {
				t.Fatalf("%s has no ---------- line", file)
			}
			caddyfileText = strings.TrimSpace(caddyfileText) + "\n"
			expected = strings.TrimSpace(expected)
			if strings.HasPrefix(expected, "{") {
				if !caddytest.CompareAdapt(t, file, caddyfileText, "caddyfile", expected) {
					t.Errorf("%s: adapted JSON differs from the golden JSON", file)
				}
				return
			}
			_, _, err = caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfileText), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), expected) {
				t.Errorf("adapt error:\n  %v\nwant it to contain:\n  %s", err, expected)
			}
		})
	}
}
