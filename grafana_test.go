package flaskedge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

// grafanaDashboard is the part of examples/grafana/flaskedge.json whose
// queries reach Prometheus.
type grafanaDashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr         string `json:"expr"`
			LegendFormat string `json:"legendFormat"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

// Labels Prometheus adds to every series it scrapes; the edge does not
// export them.
var scrapeLabels = map[string]bool{"instance": true, "job": true}

// Every metric and label the Grafana dashboard's queries, legends and
// variables use is one a running edge exports on its /metrics: a
// renamed metric or label fails here, not as an empty panel.
func TestGrafanaDashboardQueriesUseWhatTheEdgeExports(t *testing.T) {
	worker := testenv.StartFlaskWorker(t, testenv.FlaskOptions{Name: "w1"})
	edgeAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	edge := testenv.StartEdge(t, testenv.EdgeConfig(fmt.Sprintf(`{{admin}}
http://%[1]s {
	bind 127.0.0.1
	socketio_proxy %[2]s
}
`, edgeAddr, worker.Addr)), edgeAddr)

	// Traffic, so that every series has a child: a WebSocket session
	// connected to "/" (live while /metrics is read), and a refused
	// handshake.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+edgeAddr+"/socket.io/?EIO=4&transport=websocket", nil)
	require.NoError(t, err)
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = ws.ReadMessage()
	require.NoError(t, err)
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte("40")))
	_, reply, err := ws.ReadMessage()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(reply), "40{"), "CONNECT reply %q", reply)
	res, err := http.Get("http://" + edgeAddr + "/socket.io/?EIO=3&transport=polling")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusBadRequest, res.StatusCode)

	exported := scrape(t, "http://"+edge.AdminAddr+"/metrics")
	require.NotEmpty(t, exported["caddy_socketio_namespace_sessions"], "the live session's namespace is not exported yet")

	raw, err := os.ReadFile("examples/grafana/flaskedge.json")
	require.NoError(t, err)
	var d grafanaDashboard
	require.NoError(t, json.Unmarshal(raw, &d))
	queries := 0
	check := func(where, expr, legend string, extraLabels ...string) {
		queries++
		metrics, labels := promQLNames(expr)
		labels = append(labels, extraLabels...)
		for _, m := range regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`).FindAllStringSubmatch(legend, -1) {
			labels = append(labels, m[1])
		}
		if len(metrics) == 0 {
			t.Errorf("%s: %q uses no metric", where, expr)
		}
		for _, m := range metrics {
			if _, ok := exported[m]; !ok {
				t.Errorf("%s: %q uses %s, which the edge does not export", where, expr, m)
			}
		}
		for _, l := range labels {
			if scrapeLabels[l] {
				continue
			}
			found := false
			for _, m := range metrics {
				found = found || exported[m][l]
			}
			if !found {
				t.Errorf("%s: %q uses the label %q, which none of %v has", where, expr+" "+legend, l, metrics)
			}
		}
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			check("panel "+p.Title, tg.Expr, tg.LegendFormat)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`).FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(<selector>, <label>)", v.Name, v.Definition)
			continue
		}
		check("variable "+v.Name, m[1], "", m[2])
	}
	// Each series the edge exports has a panel.
	used := map[string]bool{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			ms, _ := promQLNames(tg.Expr)
			for _, m := range ms {
				used[m] = true
			}
		}
	}
	for m := range exported {
		if strings.HasPrefix(m, "caddy_socketio_") && !used[m] {
			t.Errorf("the edge exports %s, and no panel shows it", m)
		}
	}
	t.Logf("%d queries checked against %d series families of a live edge", queries, len(exported))
}

// scrape reads a /metrics page: each metric family's name with the
// labels its series have.
func scrape(t *testing.T, url string) map[string]map[string]bool {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(res.Body)
	require.NoError(t, err)
	out := map[string]map[string]bool{}
	for name, f := range families {
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		out[name] = labels
	}
	return out
}

// promQLNames reads the metric names and label names a PromQL expression
// uses, as far as the dashboard's queries go: selectors with matchers,
// aggregations with by/without, ranges, functions and numbers. Grafana's
// $variables appear only in strings and ranges.
func promQLNames(expr string) (metrics, labels []string) {
	tok := regexp.MustCompile(`"(?:[^"\\]|\\.)*"|\[[^\]]*\]|[A-Za-z_:][A-Za-z0-9_:]*|[0-9.]+|=~|!~|!=|==|[(){},=<>*/+-]`).FindAllString(expr, -1)
	keywords := map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		// aggregations, which may be followed by by/without
		"sum": true, "min": true, "max": true, "avg": true, "count": true, "group": true, "stddev": true,
		"stdvar": true, "topk": true, "bottomk": true, "quantile": true, "count_values": true}
	grouping := map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	inBraces, inGrouping := false, false
	for i, s := range tok {
		next := ""
		if i+1 < len(tok) {
			next = tok[i+1]
		}
		switch {
		case s == "{":
			inBraces = true
		case s == "}":
			inBraces = false
		case s == ")" && inGrouping:
			inGrouping = false
		case !regexp.MustCompile(`^[A-Za-z_:]`).MatchString(s):
		case inBraces || inGrouping:
			labels = append(labels, s)
		case grouping[s] && next == "(":
			inGrouping = true
		case next == "(" || keywords[s]:
			// a function or an aggregation
		default:
			metrics = append(metrics, s)
		}
	}
	return metrics, labels
}

// promQLNames reads what the dashboard's queries hold.
func TestPromQLNames(t *testing.T) {
	m, l := promQLNames(`sum by (upstream, transport) (rate(caddy_socketio_handshakes_total{instance=~"$instance", x!="a b"}[$__rate_interval]))`)
	assert.Equal(t, []string{"caddy_socketio_handshakes_total"}, m)
	assert.Equal(t, []string{"upstream", "transport", "instance", "x"}, l)
	m, l = promQLNames(`sum(caddy_socketio_upstream_healthy) / count(caddy_socketio_upstream_healthy)`)
	assert.Equal(t, []string{"caddy_socketio_upstream_healthy", "caddy_socketio_upstream_healthy"}, m)
	assert.Empty(t, l)
}
