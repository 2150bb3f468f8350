// Package socketio reads the Socket.IO v5 packets a client sends, the way
// the backend will read them, so that the edge can enforce per-namespace
// rules on the wire. It has no Caddy imports and no I/O.
//
// The backend is python-socketio 5.7.2 behind python-engineio 4.3.4
// (Debian's Flask-SocketIO 5.3.2 stack), and "the way the backend reads
// it" is meant literally: [Read] reproduces socketio/packet.py's
// Packet.decode and socketio/server.py's _handle_eio_message, including
// where they are more lenient than the specification, and refuses (returns
// an error) where it does not reproduce them. A differential test runs the
// real Python decoder on a corpus and checks both agree.
//
// What python does that a spec-minded reader would not expect, and how
// Read answers it:
//
//   - The namespace is whatever follows the type (and an optional
//     "<digits>-" attachment count, accepted on every packet type) from a
//     '/' up to the first ',' anywhere in the packet, cut at the first '?':
//     "40/admin?x=1," and "401-/admin," connect to "/admin", and
//     "40/admin" (no comma) too. Nothing else is normalised: "/admin/",
//     "/Admin", "//admin", "/admin " and "/%61dmin" are other namespaces.
//     Read returns exactly that namespace, "/" when there is none.
//   - python-engineio JSON-decodes every text message before handing it to
//     python-socketio (engineio/packet.py:66-74) and keeps the decoded value
//     unless it is an integer: `4"0/admin,"` connects to "/admin", and so
//     does `4 "0/admin,"`. Read refuses any message that does not start
//     with an ASCII digit right after the '4', and any message that is a
//     JSON number with a fraction or exponent (`41.0` is a DISCONNECT from
//     "/").
//   - int() accepts any Unicode decimal digit, so "٤0/admin," (Arabic-Indic
//     four) is an Engine.IO message and "4٠/admin," (Arabic-Indic zero) a
//     CONNECT; isdigit() accepts more still in the attachment count and the
//     ack id. Read refuses a non-ASCII character wherever python would ask
//     whether it is a digit.
//   - A polling body that starts with "d=" is percent-decoded as a JSONP
//     form before it is split (engineio/payload.py:38-40), so
//     "d=40%2Fadmin%2C" connects to "/admin". Read refuses a packet that
//     starts with "d=".
//   - A binary message (a WebSocket binary frame or a polling "b" record)
//     is never a packet of its own: python-socketio either takes it as an
//     attachment of a pending BINARY_EVENT/BINARY_ACK or fails to decode it
//     (bytes.find('-') raises TypeError, packet.py:84). Conversely, while a
//     binary packet waits for attachments, python takes the next messages,
//     text included, as attachments (server.py:777-785), so a CONNECT the
//     edge sees there never reaches _handle_connect. Reading each packet
//     on its own, without that state, is therefore safe: the edge may judge
//     a text packet python will swallow, never miss one python will act on.
//
// The edge should refuse any packet Read returns an error for. Errors
// wrapping [ErrMalformed] are packets python-socketio drops too; errors
// wrapping [ErrAmbiguous] are packets it may act on in ways the edge does
// not model.
//
// Connection state recovery is the protocol of the Node socket.io 4.6+
// server, whose client half every socket.io-client 4.x carries and which
// python-socketio 5.7.2 lacks, so the edge speaks it for the worker:
//
//   - the CONNECT reply carries a private session id next to the sid,
//     `40{"sid":"…","pid":"…"}` ([WithPid]);
//   - every EVENT carries an offset as its last argument,
//     `42["chat","hi","<offset>"]` ([WithOffset]); the client keeps the
//     last string argument of every event it receives once it has a pid;
//   - on reconnection the client's CONNECT data is `{pid, offset, ...auth}`
//     (offset left out when no event has arrived yet), which the edge reads
//     and removes before the worker sees it ([RecoveryOf]).
//
// Like [Read] and [ReadWorker], these functions take and return whole
// Engine.IO messages: the Engine.IO type '4' comes first.
package socketio
