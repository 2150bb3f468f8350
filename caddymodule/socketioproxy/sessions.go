package socketioproxy

import (
	"sync"
	"time"
)

// sessions tracks the Engine.IO sessions live on this edge, so that the
// least_sessions policy sees each worker's load. A polling session has no
// connection to watch, so it counts as live until it sends a close packet,
// its worker forgets it, or it stays silent longer than its ping interval
// and timeout allow.
type sessions struct {
	mu   sync.Mutex
	live map[string]*session // by the sid the client sees
}

type session struct {
	up        *upstream
	lastSeen  time.Time
	idle      time.Duration // silence after which a polling session is gone
	websocket bool          // counted as live while its relay runs
}

// defaultIdle is python-engineio's pingInterval + pingTimeout with a little
// grace, for sessions whose open packet this edge did not see.
const defaultIdle = 50 * time.Second

func newSessions() *sessions { return &sessions{live: make(map[string]*session)} }

// opened records a session whose handshake this edge relayed; pick
// already counted it on its worker.
func (s *sessions) opened(sid string, up *upstream, idle time.Duration, websocket bool, now time.Time) {
	s.mu.Lock()
	s.live[sid] = &session{up: up, lastSeen: now, idle: idle, websocket: websocket}
	s.mu.Unlock()
}

// seen records activity of a session, which may have been opened through
// another edge.
func (s *sessions) seen(sid string, up *upstream, websocket bool, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.live[sid]; ok {
		ss.lastSeen = now
		ss.websocket = ss.websocket || websocket
		return
	}
	s.live[sid] = &session{up: up, lastSeen: now, idle: defaultIdle, websocket: websocket}
	up.sessions.Add(1)
}

// closed forgets a session.
func (s *sessions) closed(sid string) {
	s.mu.Lock()
	if ss, ok := s.live[sid]; ok {
		delete(s.live, sid)
		ss.up.sessions.Add(-1)
	}
	s.mu.Unlock()
}

// sweep forgets the polling sessions that have been silent too long.
func (s *sessions) sweep(now time.Time) {
	s.mu.Lock()
	for sid, ss := range s.live {
		if !ss.websocket && now.Sub(ss.lastSeen) > ss.idle {
			delete(s.live, sid)
			ss.up.sessions.Add(-1)
		}
	}
	s.mu.Unlock()
}
