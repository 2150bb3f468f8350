"""Encode Socket.IO packets as a python-socketio worker does.

Reads JSON lines from stdin, {"type": 2, "namespace": "/admin", "id": 7,
"data": [...]}, and writes for each the Engine.IO message the server sends
(Packet.encode, with "4" in front as python-engineio adds for a message)
and, for binary packets, the attachment count, as one JSON line
{"text": "...", "attachments": n}.
"""
import json
import sys

from socketio import packet

for line in sys.stdin:
    e = json.loads(line)
    data = e.get("data")
    typ = e["type"]
    if e.get("binary"):
        # BINARY_EVENT and BINARY_ACK are made from EVENT and ACK with
        # bytes in the data, as the server does.
        typ = {packet.BINARY_EVENT: packet.EVENT, packet.BINARY_ACK: packet.ACK}[typ]
        data = [data, b"\x01\x02"] if data is not None else [b"\x01", b"\x02"]
    p = packet.Packet(packet_type=typ, data=data,
                      namespace=e.get("namespace"), id=e.get("id"))
    enc = p.encode()
    text, attachments = (enc[0], len(enc) - 1) if isinstance(enc, list) else (enc, 0)
    sys.stdout.write(json.dumps({"text": "4" + text,
                                 "attachments": attachments}) + "\n")
