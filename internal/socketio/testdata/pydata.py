"""Decode Socket.IO packets as python-socketio 5.7.2 does.

Reads JSON lines {"text": "40..."} from stdin (an Engine.IO message the
edge's Read accepts, so python-engineio hands everything after the "4" to
python-socketio as it is) and writes for each the decoded packet as one
JSON line {"type", "namespace", "id", "data"}, or {"error"}.
"""
import json
import sys

from socketio import packet

for line in sys.stdin:
    if not line.strip():
        continue
    text = json.loads(line)["text"]
    try:
        p = packet.Packet(encoded_packet=text[1:])
        out = {"type": p.packet_type, "namespace": p.namespace, "id": p.id,
               "data": p.data}
    except Exception as e:
        out = {"error": type(e).__name__ + ": " + str(e)}
    sys.stdout.write(json.dumps(out) + "\n")
sys.stdout.flush()
