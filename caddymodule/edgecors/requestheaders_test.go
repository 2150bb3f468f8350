package edgecors

import (
	"net/http"
	"strings"
	"testing"
)

// Access-Control-Request-Headers in each form the Fetch standard
// allows, against allowed_headers Content-Type X-CSRFToken.
func TestRequestHeadersAreParsedAsFetchDoes(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{
		Origins:        []string{"https://app.example.com"},
		AllowedHeaders: []string{"Content-Type", "X-CSRFToken"},
	})
	for _, tc := range []struct {
		name  string
		lines []string
		want  int
		bad   string // the name the refusal names
	}{
		{"Chromium's form: lowercase, sorted, no spaces", []string{"content-type,x-csrftoken"}, 204, ""},
		{"optional whitespace around elements", []string{" content-type ,\tx-csrftoken\t"}, 204, ""},
		{"empty elements are skipped", []string{",content-type,, ,x-csrftoken,"}, 204, ""},
		{"several field lines are one list", []string{"content-type", "x-csrftoken"}, 204, ""},
		{"an empty field line among others", []string{"", "content-type"}, 204, ""},
		{"names are compared without regard to case", []string{"CONTENT-TYPE,X-CsrfToken"}, 204, ""},
		{"an empty value asks for no header", []string{""}, 204, ""},
		{"one name not allowed refuses all", []string{"content-type,x-api-key"}, 403, "x-api-key"},
		{"in a later field line too", []string{"content-type", "x-api-key"}, 403, "x-api-key"},
		{"whitespace inside a name is not OWS", []string{"content type"}, 403, "content type"},
		{"a prefix of an allowed name is another name", []string{"content-typ"}, 403, "content-typ"},
		{"longer than any browser could send", []string{strings.Repeat("content-type,", 1000)}, 403, tooLongRequestHeaders},
		{"as many field lines", manyLines(1000, "content-type"), 403, tooLongRequestHeaders},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, logs := newTestHandler(t, &Handler{Origins: h.Origins, AllowedHeaders: h.AllowedHeaders})
			r := preflight("https://app.example.com", "PUT", "")
			r.Header["Access-Control-Request-Headers"] = tc.lines
			rec := serve(t, h, &appHandler{}, r)
			if rec.Code != tc.want {
				t.Fatalf("status = %d, want %d", rec.Code, tc.want)
			}
			if tc.want == http.StatusNoContent {
				if got := rec.Header()["Access-Control-Allow-Origin"]; len(got) != 1 {
					t.Errorf("ACAO = %q", got)
				}
				return
			}
			if got := accessControlHeaders(rec.Header()); len(got) != 0 {
				t.Errorf("refusal carries %v", got)
			}
			assertEvent(t, logs, `preflight refused: header not allowed: "`+strings.ReplaceAll(tc.bad, `"`, `\"`)+`"`, "https://app.example.com")
		})
	}
}

func manyLines(n int, s string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// The longest value a browser could send for the allowed headers (each
// once, with the widest separator) plus whitespace slack still passes.
func TestRequestHeadersNamingEveryAllowedHeaderWithSpacesPass(t *testing.T) {
	allowed := []string{"Content-Type", "X-Requested-With", "X-CSRFToken", "X-CSRF-Token"}
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}, AllowedHeaders: allowed})
	value := strings.Repeat(" ", requestHeadersSlack/2) + strings.Join(allowed, ", ") + strings.Repeat(",", requestHeadersSlack/4)
	if bad, ok := h.firstDisallowedHeader([]string{value}); !ok {
		t.Errorf("refused %q", bad)
	}
}

// The cost is bounded by the configuration: a huge value is refused
// after reading at most maxRequestHeaders bytes of it, allocating
// nothing.
func TestRequestHeadersCostIsBoundedWhateverTheSize(t *testing.T) {
	h, _ := newTestHandler(t, &Handler{Origins: []string{"https://app.example.com"}})
	huge := []string{strings.Repeat(" ", 1<<20) + "content-type"}
	lines := manyLines(1<<16, ",")
	for _, in := range [][]string{huge, lines} {
		if allocs := testing.AllocsPerRun(100, func() {
			if _, ok := h.firstDisallowedHeader(in); ok {
				t.Fatal("accepted")
			}
		}); allocs != 0 {
			t.Errorf("%v allocations", allocs)
		}
	}
}

// Refusing a 1 MiB value costs what refusing a short one does.
func BenchmarkRequestHeaders(b *testing.B) {
	h, _ := newTestHandler(b, &Handler{Origins: []string{"https://app.example.com"}})
	for _, bc := range []struct {
		name  string
		lines []string
	}{
		{"allowed", []string{"content-type,x-csrftoken"}},
		{"1MiB_value", []string{strings.Repeat("content-type,", 1<<20/13)}},
		{"64Ki_lines", manyLines(1<<16, "content-type")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h.firstDisallowedHeader(bc.lines)
			}
		})
	}
}

// reference is the Fetch reading written the plain way: combine the
// lines with ",", split on ",", strip tab and space, drop empties,
// compare lowercased.
func reference(allowed []string, lines []string) (string, bool) {
	set := map[string]bool{}
	for _, a := range allowed {
		set[strings.ToLower(a)] = true
	}
	for _, name := range strings.Split(strings.Join(lines, ","), ",") {
		name = strings.Trim(name, " \t")
		if name != "" && !set[strings.ToLower(name)] {
			return name, false
		}
	}
	return "", true
}

func FuzzRequestHeaders(f *testing.F) {
	for _, seed := range [][2]string{
		{"content-type,x-csrftoken", ""},
		{" Content-Type ,\t", "x-requested-with"},
		{",,", ""},
		{"x-api-key", "content-type"},
		{"content-type, x-csrf-token", "X-CSRFTOKEN"},
		{"\tx-requested-with\t,", " ,content-type"},
	} {
		f.Add(seed[0], seed[1])
	}
	h, _ := newTestHandler(f, &Handler{Origins: []string{"https://app.example.com"}})
	f.Fuzz(func(t *testing.T, a, b string) {
		lines := []string{a, b}
		bad, ok := h.firstDisallowedHeader(lines)
		if len(a)+len(b)+2 > h.maxRequestHeaders {
			if ok || bad != tooLongRequestHeaders {
				t.Fatalf("%q: over the bound, got %q, %v", lines, bad, ok)
			}
			return
		}
		wantBad, wantOK := reference(h.headers, lines)
		if ok != wantOK || bad != wantBad {
			t.Fatalf("%q: got %q, %v; the Fetch reading gives %q, %v", lines, bad, ok, wantBad, wantOK)
		}
	})
}
