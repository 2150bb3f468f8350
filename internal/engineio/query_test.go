package engineio

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseQueryReadsWhatClientsSend(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want Query
	}{
		{"EIO=4&transport=polling&t=OqY7r2c", Query{Transport: Polling}},
		{"EIO=4&transport=websocket", Query{Transport: WebSocket}},
		{"EIO=4&transport=polling&t=OqY7r4x&sid=Bq0Vq5ZfDP6QrQUXAAAB", Query{Transport: Polling, SID: "Bq0Vq5ZfDP6QrQUXAAAB"}},
		{"EIO=4&transport=websocket&sid=Bq0Vq5ZfDP6QrQUXAAAB", Query{Transport: WebSocket, SID: "Bq0Vq5ZfDP6QrQUXAAAB"}},
		{"EIO=4", Query{Transport: Polling}}, // python-engineio defaults to polling
		{"EIO=4&transport=polling&b64=1&&x=%41", Query{Transport: Polling}},
	} {
		got, err := ParseQuery(tc.raw)
		require.NoError(t, err, tc.raw)
		assert.Equal(t, tc.want, got, tc.raw)
	}
}

func TestParseQueryWithoutEIOIsNotEngineIO(t *testing.T) {
	for _, raw := range []string{"", "a=b", "eio=4&transport=polling", "EIOx=4"} {
		_, err := ParseQuery(raw)
		assert.ErrorIs(t, err, ErrNotEngineIO, raw)
	}
}

// Every query python-engineio could read differently from a plain reading
// is refused rather than guessed at.
func TestParseQueryRefusesAmbiguousQueries(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		code ErrorCode
	}{
		{"EIO=3&transport=polling", CodeUnsupportedProtocolVersion},
		{"EIO=4&transport=flashsocket", CodeTransportUnknown},
		{"EIO=4&transport=polling&sid=abc%2F", CodeBadRequest},
		{"EIO=4&transport=polling&sid=a&sid=b", CodeBadRequest},
		{"EIO=4&transport=polling&sid=&sid=b", CodeBadRequest}, // parse_qs drops the blank one
		{"EIO=4&transport=polling&sid", CodeBadRequest},
		{"EIO=4&%73id=abc", CodeBadRequest}, // decodes to sid
		{"EIO=4&si%64=abc", CodeBadRequest},
		{"E%49O=3&EIO=4", CodeBadRequest},
		{"EIO=4&transport=polling&transport=websocket", CodeBadRequest},
		{"EIO=4&EIO=4", CodeBadRequest},
		{"EIO=4&transport=polling&j=0", CodeBadRequest},
		{"EIO=4&transport=web+socket", CodeBadRequest},
		{"EIO=4&transport=polling&sid=a.b", CodeSessionIDUnknown},
		{"EIO=4&transport=polling&sid=" + string(make([]byte, 200)), CodeSessionIDUnknown},
	} {
		_, err := ParseQuery(tc.raw)
		var qe *QueryError
		require.True(t, errors.As(err, &qe), "%q: got %v", tc.raw, err)
		assert.Equal(t, tc.code, qe.Code, tc.raw)
	}
}

func TestWriteErrorIsWhatTheReferenceServerSends(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, CodeSessionIDUnknown)
	assert.Equal(t, 400, rec.Code)
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.JSONEq(t, `{"code":1,"message":"Session ID unknown"}`, rec.Body.String())

	rec = httptest.NewRecorder()
	WriteError(rec, CodeForbidden)
	assert.Equal(t, 403, rec.Code)
	assert.JSONEq(t, `{"code":4,"message":"Forbidden"}`, rec.Body.String())
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"EIO=4&transport=polling&t=x", "EIO=4&transport=websocket&sid=abc",
		"EIO=4&%73id=a", "EIO=4&sid=a&sid=b", "EIO=4&j=1", "a&&b=&=c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := ParseQuery(raw)
		if err != nil {
			return
		}
		// Whatever is accepted must read the same to parse_qs: the sid
		// the edge saw is the only sid the backend can see.
		if q.SID != "" && !validSID(q.SID) {
			t.Fatalf("accepted invalid sid %q", q.SID)
		}
		sids := pythonParseQS(raw)["sid"]
		if q.SID == "" && len(sids) > 0 || q.SID != "" && (len(sids) == 0 || sids[0] != q.SID) {
			t.Fatalf("edge read sid %q, parse_qs would read %q from %q", q.SID, sids, raw)
		}
	})
}

// pythonParseQS is urllib.parse.parse_qs with its defaults, written out
// from CPython 3.11's parse_qsl, for the fuzz test to compare against.
func pythonParseQS(raw string) map[string][]string {
	out := map[string][]string{}
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok || value == "" {
			continue
		}
		k := unquotePlus(name)
		out[k] = append(out[k], unquotePlus(value))
	}
	return out
}

func TestReplaceSIDChangesOnlyTheSID(t *testing.T) {
	assert.Equal(t, "EIO=4&transport=polling&t=x&sid=worker&b64=1",
		ReplaceSID("EIO=4&transport=polling&t=x&sid=edge&b64=1", "worker"))
	assert.Equal(t, "sid=w&&EIO=4", ReplaceSID("sid=e&&EIO=4", "w"))
}

func TestHasParamReadsAsParseQS(t *testing.T) {
	for raw, want := range map[string]bool{
		"EIO=4&sid=abc":   true,
		"EIO=4&%73id=abc": true,
		"EIO=4&si%64=x":   true,
		"sid=":            false,
		"sid":             false,
		"EIO=4&sid=&x=1":  false,
		"xsid=1":          false,
		"s+id=1":          false,
		"a=1&&sid=2":      true,
		"":                false,
	} {
		assert.Equal(t, want, HasParam(raw, "sid"), raw)
		assert.Equal(t, want, len(pythonParseQS(raw)["sid"]) > 0, "reference: %s", raw)
	}
}
