package testenv_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/flaskedge/flaskedge/internal/testenv"
)

func stream(n int, skip func(int) bool) []int {
	var xs []int
	for i := range n {
		if skip == nil || !skip(i) {
			xs = append(xs, i)
		}
	}
	return xs
}

func acked(n int) []int {
	var xs []int
	for i := 1; i < n; i += 4 {
		xs = append(xs, i)
	}
	return xs
}

func TestRecoveredProblemsAcceptsOneWholeRecoveredStream(t *testing.T) {
	r := testenv.RecoveryResult{
		Connects:   []testenv.RecoveryConnect{{ID: "a"}, {ID: "a", Recovered: true}},
		Runs:       []testenv.RecoveryRun{{ID: "a", Received: stream(8, nil), Done: true}},
		WorkerAcks: acked(8),
	}
	assert.Empty(t, r.RecoveredProblems(8, true))
}

// An event that asks for an acknowledgement may come twice (at least
// once: its acknowledgement was lost with the connection); no other.
func TestRecoveredProblemsAcceptsAnAckedEventSentAgain(t *testing.T) {
	r := testenv.RecoveryResult{
		Connects:   []testenv.RecoveryConnect{{ID: "a"}, {ID: "a", Recovered: true}},
		Runs:       []testenv.RecoveryRun{{ID: "a", Received: []int{0, 1, 1, 2, 3, 4, 5, 6, 7}, Duplicates: []int{1}, Done: true}},
		WorkerAcks: acked(8),
	}
	assert.Empty(t, r.RecoveredProblems(8, true))
}

func TestRecoveredProblemsNamesEachFault(t *testing.T) {
	r := testenv.RecoveryResult{
		Connects:   []testenv.RecoveryConnect{{ID: "a"}, {ID: "b"}},
		Runs:       []testenv.RecoveryRun{{ID: "a", Received: []int{0, 1, 1, 3, 3}, Duplicates: []int{1, 3}}, {ID: "b"}},
		WorkerAcks: []int{1},
		BadBinary:  []int{2},
		TimedOut:   true,
	}
	p := r.RecoveredProblems(8, true)
	for _, want := range []string{"timed out", "socket.recovered per connect = [false false]", "2 count runs",
		"count_done never came", "missing [2 4 5 6 7]", "duplicates: [3]", "wrong bytes: [2]", "count_acks = [1] missing [5], want [1 5]"} {
		assert.Contains(t, fmtList(p), want)
	}
}

func TestRecoveredProblemsWithoutAcksIgnoresTheAckKind(t *testing.T) {
	r := testenv.RecoveryResult{
		Connects: []testenv.RecoveryConnect{{ID: "a"}, {ID: "a", Recovered: true}},
		Runs:     []testenv.RecoveryRun{{ID: "a", Received: stream(8, func(i int) bool { return i%4 == 1 }), Done: true}},
	}
	assert.Empty(t, r.RecoveredProblems(8, false))
	assert.NotEmpty(t, r.RecoveredProblems(8, true))
}

func TestNewSessionProblemsWantsAWholeSecondRun(t *testing.T) {
	r := testenv.RecoveryResult{
		Connects:   []testenv.RecoveryConnect{{ID: "a"}, {ID: "b"}},
		Runs:       []testenv.RecoveryRun{{ID: "a", Received: []int{0}}, {ID: "b", Received: stream(8, nil), Done: true}},
		WorkerAcks: acked(8),
	}
	assert.Empty(t, r.NewSessionProblems(8))
	r.Connects[1].Recovered = true
	assert.NotEmpty(t, r.NewSessionProblems(8))
}

func TestCountLogCountsOneSidsLines(t *testing.T) {
	log := "t w1 connect namespace=/ sid=abc user=-\n" +
		"t w1 connect namespace=/ sid=abcd user=-\n" +
		"t w1 disconnect namespace=/ sid=abc user=-\n" +
		"t w1 connect namespace=/admin sid=abc user=-\n"
	assert.Equal(t, 1, testenv.CountLog(log, "connect", "abc"))
	assert.Equal(t, 1, testenv.CountLog(log, "disconnect", "abc"))
	assert.Equal(t, 0, testenv.CountLog(log, "disconnect", "abcd"))
}

func fmtList(p []string) string {
	s := ""
	for _, x := range p {
		s += x + "\n"
	}
	return s
}

// An acknowledgement the client sent before its connection dropped may be
// lost with it; one sent after the recovery may not.
func TestRecoveredProblemsAcceptsOnlyAcksLostWithTheConnection(t *testing.T) {
	r := testenv.RecoveryResult{
		Connects:        []testenv.RecoveryConnect{{ID: "a"}, {ID: "a", Recovered: true}},
		Runs:            []testenv.RecoveryRun{{ID: "a", Received: stream(8, nil), Done: true}},
		WorkerAcks:      []int{5},
		AckedBeforeDrop: []int{1},
	}
	assert.Empty(t, r.RecoveredProblems(8, true))
	r.AckedBeforeDrop = nil
	assert.Contains(t, fmtList(r.RecoveredProblems(8, true)), "count_acks = [5] missing [1]")
}
