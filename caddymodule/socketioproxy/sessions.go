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
	stop chan struct{}       // ends the sweeper
}

type session struct {
	up        *upstreamState
	lastSeen  time.Time
	idle      time.Duration // silence after which a polling session is gone
	websocket bool          // counted as live while its relay runs
}

// defaultIdle is python-engineio's pingInterval + pingTimeout with a little
// grace, for sessions whose open packet this edge did not see.
const defaultIdle = 50 * time.Second

// sweepInterval is how often silent polling sessions are looked for.
const sweepInterval = 5 * time.Second

func newSessions() *sessions {
	s := &sessions{live: make(map[string]*session), stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(sweepInterval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case now := <-t.C:
				s.sweep(now)
			}
		}
	}()
	return s
}

// Destruct stops the sweeper once no config uses the registry.
func (s *sessions) Destruct() error {
	close(s.stop)
	return nil
}

// opened records a session whose handshake this edge relayed; pick
// already counted it on its worker.
func (s *sessions) opened(sid string, up *upstreamState, idle time.Duration, websocket bool, now time.Time) {
	s.mu.Lock()
	s.live[sid] = &session{up: up, lastSeen: now, idle: idle, websocket: websocket}
	s.mu.Unlock()
}

// seen records activity of a session, which may have been opened through
// another edge.
func (s *sessions) seen(sid string, up *upstreamState, websocket bool, now time.Time) {
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

// each calls fn for every live session.
func (s *sessions) each(fn func(up *upstreamState, websocket bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.live {
		fn(ss.up, ss.websocket)
	}
}
