"""Report what python-socketio does with client packets.

Reads JSON lines from stdin, one corpus entry per line:

    {"name": "...", "text": "40/admin,"}                 one text packet
    {"name": "...", "b64": "...", "binary": true}        exact bytes; binary
                                                         means a WebSocket
                                                         binary frame
    {"name": "...", "frames": [{...}, {...}]}            packets of one session
    {"name": "...", "body": "..."}                       a polling POST body

and writes one JSON line per entry with, for every packet, what
python-engineio hands to python-socketio and what the real
socketio.Server._handle_eio_message then does with it. Nothing is
reimplemented: the decoder is socketio.packet.Packet, the dispatch is the
server's own code, and only the manager (where the namespace arrives after
`namespace or '/'`) is replaced by a recorder.

The header (type, attachments, namespace, ack id) is read with a Packet
whose JSON loader accepts anything, so it is known even when the data is
not valid JSON and the real decode raises.

Regenerate the golden file after changing the corpus (from internal/socketio):

    /usr/bin/python3 testdata/pydecode.py < testdata/corpus.jsonl \
        > testdata/corpus.golden.jsonl
"""
import base64
import json
import sys

import socketio
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from socketio import packet as sio_packet


class _AnyJSON(object):
    @staticmethod
    def loads(s):
        return None


class HeaderOnly(sio_packet.Packet):
    json = _AnyJSON


def new_server():
    """A server whose manager records what it is asked to do."""
    actions = []
    srv = socketio.Server(async_mode='threading', async_handlers=False,
                          namespaces='*', logger=False)
    m = srv.manager
    m.connect = lambda eio_sid, ns: actions.append(['connect', ns])
    # The sid carries the namespace so that trigger_callback, which is not
    # given it, can still report it.
    m.sid_from_eio_sid = lambda eio_sid, ns: 'sid:' + ns
    m.is_connected = lambda sid, ns: True
    m.pre_disconnect = lambda sid, namespace: actions.append(
        ['disconnect', namespace])
    m.disconnect = lambda *a, **k: None
    m.trigger_callback = lambda sid, id, data: actions.append(
        ['ack', sid[len('sid:'):]])
    srv._handle_event_internal = \
        lambda server, sid, eio_sid, data, ns, id: actions.append(
            ['event', ns])
    srv._send_packet = lambda *a, **k: None
    srv._trigger_event = lambda *a, **k: None
    return srv, actions


def err(e):
    return type(e).__name__ + ': ' + str(e)


def header(data):
    h = {}
    try:
        p = HeaderOnly(encoded_packet=data)
    except Exception as e:
        h['error'] = err(e)
        return h
    h['type'] = p.packet_type
    h['attachments'] = p.attachment_count
    h['ns'] = p.namespace
    h['id'] = None if p.id is None else str(p.id)
    return h


def dispatch(srv, actions, data, out):
    """Hand data to the server as python-engineio's 'message' event does."""
    if isinstance(data, str):
        out['header'] = header(data)
    before = srv._binary_packet.get('e')
    try:
        srv._handle_eio_message('e', data)
    except Exception as e:
        out['error'] = err(e)
    pending = srv._binary_packet.get('e')
    if pending is not None and pending is not before:
        actions.append(['binary-pending', pending.namespace or '/',
                        pending.attachment_count])


def frame(srv, actions, raw, binary):
    out = {'b64': base64.b64encode(raw).decode(), 'binary': binary}
    if binary:
        encoded = raw
    else:
        try:
            encoded = raw.decode('utf-8')
        except UnicodeDecodeError as e:
            out['eio'] = {'error': err(e)}
            out['actions'] = []
            return out
    try:
        pkt = eio_packet.Packet(encoded_packet=encoded)
    except Exception as e:
        out['eio'] = {'error': err(e)}
        out['actions'] = []
        return out
    out['eio'] = {'type': pkt.packet_type, 'data': type(pkt.data).__name__}
    del actions[:]
    if pkt.packet_type == eio_packet.MESSAGE:
        dispatch(srv, actions, pkt.data, out)
    out['actions'] = list(actions)
    return out


def body(srv, actions, text):
    out = {'body_b64': base64.b64encode(text.encode('utf-8')).decode()}
    try:
        p = eio_payload.Payload(encoded_payload=text)
    except Exception as e:
        out['error'] = err(e)
        out['actions'] = []
        return out
    errors = []
    for pkt in p.packets:
        if pkt.packet_type != eio_packet.MESSAGE:
            continue
        try:
            srv._handle_eio_message('e', pkt.data)
        except Exception as e:
            errors.append(err(e))
    out['errors'] = errors
    out['actions'] = list(actions)
    return out


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        entry = json.loads(line)
        srv, actions = new_server()
        res = {'name': entry['name']}
        if 'body' in entry:
            res.update(body(srv, actions, entry['body']))
        else:
            frames = entry.get('frames') or [entry]
            res['frames'] = []
            for f in frames:
                if 'b64' in f:
                    raw = base64.b64decode(f['b64'])
                else:
                    raw = f['text'].encode('utf-8', 'surrogatepass')
                res['frames'].append(
                    frame(srv, actions, raw, bool(f.get('binary'))))
        print(json.dumps(res, sort_keys=True))
    sys.stdout.flush()


if __name__ == '__main__':
    main()
