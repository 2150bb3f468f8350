#!/usr/bin/python3
"""Generate Flask session-cookie test vectors with the real Flask.

The Go verifier in internal/flaskcookie must accept exactly the cookies
Flask's SecureCookieSessionInterface writes (itsdangerous
URLSafeTimedSerializer, salt "cookie-session", key derivation "hmac",
digest SHA-1, Flask's TaggedJSONSerializer). The cookies here are made
by Flask itself -- a test client request against a Flask app, or
app.session_interface where a test client cannot express the case -- so
the Go tests check against Flask, not against our reading of Flask.

Regenerate (Debian python3-flask 2.2.2 / itsdangerous 2.1.2; no PyPI):

    /usr/bin/python3 testdata/flask_cookies/gen.py > testdata/flask_cookies/vectors.json

The output is deterministic: signing time is pinned by patching
time.time, which is all itsdangerous reads, and is recorded per vector
as "signed_at"; "now" is the time a Go test must inject when verifying.

Each vector says what the edge must conclude ("expect": "valid" or an
error reason: malformed, bad_signature, expired, future, too_large) and
what Flask itself concludes ("flask_accepts"), checked here by loading
the cookie through Flask's own session interface at the same "now".
Where they differ the vector has a "note": the edge is deliberately
stricter than itsdangerous about encodings Flask never produces.
"""

import datetime
import json
import random
import sys
import time
import uuid
from unittest import mock

import flask
import itsdangerous
from flask import Flask, session
from itsdangerous import TimestampSigner
from itsdangerous.encoding import base64_encode, int_to_bytes
from markupsafe import Markup

SECRET = "current-secret-key-for-tests-only"
OLD_SECRET = "previous-secret-key-for-tests-only"
OTHER_SECRET = "some-other-apps-key"
SIGNED_AT = 1_700_000_000  # 2023-11-14T22:13:20Z
MAX_AGE = 31 * 24 * 3600  # Flask's PERMANENT_SESSION_LIFETIME default

app = Flask(__name__)
app.secret_key = SECRET
# What the view under /set writes into the session; set per vector.
_next_session = {}


@app.route("/set")
def set_session():
    permanent = _next_session.pop("__permanent__", False)
    session.update(_next_session)
    session.permanent = permanent
    return "ok"


def flask_cookie(data, secret=SECRET):
    """A cookie exactly as Flask writes it in a response, signed at SIGNED_AT."""
    global _next_session
    _next_session = dict(data)
    app.secret_key = secret
    try:
        with mock.patch("time.time", return_value=float(SIGNED_AT)):
            client = app.test_client()
            resp = client.get("/set")
        header = resp.headers["Set-Cookie"]
        name, _, rest = header.partition("=")
        assert name == app.config["SESSION_COOKIE_NAME"]
        return rest.split(";", 1)[0]
    finally:
        app.secret_key = SECRET


def interface_cookie(data, secret=SECRET):
    """Flask's session serializer, for payloads a browser could not carry."""
    app.secret_key = secret
    try:
        s = app.session_interface.get_signing_serializer(app)
        with mock.patch("time.time", return_value=float(SIGNED_AT)):
            return s.dumps(data)
    finally:
        app.secret_key = SECRET


def signed_raw(payload_b64, secret=SECRET, timestamp=True):
    """Sign an arbitrary payload the way Flask's serializer does, so the
    signature is valid but the payload is not something Flask would write.
    With timestamp=False, payload_b64 already ends in its own timestamp."""
    cls = TimestampSigner if timestamp else itsdangerous.Signer
    signer = cls(
        secret,
        salt=app.session_interface.salt,
        key_derivation=app.session_interface.key_derivation,
        digest_method=app.session_interface.digest_method,
    )
    with mock.patch("time.time", return_value=float(SIGNED_AT)):
        return signer.sign(payload_b64).decode()


def flask_accepts(cookie, keys, now):
    """Does Flask 2.2 load this cookie as a non-empty session at `now`?

    Flask 2.2 has no SECRET_KEY_FALLBACKS; itsdangerous takes a list of
    keys oldest to newest, so the edge's [current, fallback...] is reversed.
    """
    app.secret_key = keys[0]
    try:
        s = app.session_interface.get_signing_serializer(app)
        s.secret_keys = [k.encode() for k in reversed(keys)]
        with mock.patch("time.time", return_value=float(now)):
            s.loads(cookie, max_age=MAX_AGE)
        return True
    except itsdangerous.BadData:
        return False
    except (OverflowError, ValueError, OSError):
        return False  # itsdangerous crashed: Flask would answer 500
    finally:
        app.secret_key = SECRET


def flip(cookie, index):
    """Replace one base64 character by another so the length stays canonical."""
    c = cookie[index]
    repl = "B" if c != "B" else "C"
    return cookie[:index] + repl + cookie[index + 1 :]


def main():
    vectors = []

    def add(name, cookie, expect, *, keys=(SECRET,), now=SIGNED_AT + 60,
            user_id="", roles=(), note=None):
        v = {
            "name": name,
            "cookie": cookie,
            "keys": list(keys),
            "signed_at": SIGNED_AT,
            "now": now,
            "max_age": MAX_AGE,
            "expect": expect,
            "flask_accepts": flask_accepts(cookie, list(keys), now),
        }
        if expect == "valid":
            v["user_id"] = user_id
            v["roles"] = list(roles)
            assert v["flask_accepts"], name
        if note:
            v["note"] = note
        vectors.append(v)

    login = {"_user_id": "42", "_fresh": True, "role": "admin"}
    plain = flask_cookie(login)
    assert not plain.startswith(".")
    add("plain", plain, "valid", user_id="42", roles=["admin"])

    big = {"_user_id": "7", "role": ["admin", "editor"], "notes": "lorem ipsum " * 150}
    compressed = flask_cookie(big)
    assert compressed.startswith("."), "payload should have been compressed"
    add("compressed", compressed, "valid", user_id="7", roles=["admin", "editor"])

    tagged = {
        "_user_id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "role": ("ops", Markup("auditor")),
        "blob": b"\x00\x01binary",
        "seen": datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc),
        "html": Markup("<b>hi</b>"),
        "prefs": {" t": "looks like a tag"},
    }
    add("tagged", flask_cookie(tagged), "valid",
        user_id="12345678-1234-5678-1234-567812345678", roles=["ops", "auditor"])

    add("markup_role_int_user", flask_cookie({"_user_id": 1001, "role": Markup("staff")}),
        "valid", user_id="1001", roles=["staff"])

    # A session whose only key is a tag name is written as {" di": ...}.
    add("top_level_tag_dict", flask_cookie({" t": "x"}), "valid")

    add("anonymous_session", flask_cookie({"csrf_token": "abc123"}), "valid")

    perm = dict(login, __permanent__=True)
    add("permanent", flask_cookie(perm), "valid", user_id="42", roles=["admin"])

    add("age_equals_max_age", plain, "valid", now=SIGNED_AT + MAX_AGE,
        user_id="42", roles=["admin"])
    add("expired", plain, "expired", now=SIGNED_AT + MAX_AGE + 1)
    add("future_timestamp", plain, "future", now=SIGNED_AT - 1)

    add("wrong_key", flask_cookie(login, secret=OTHER_SECRET), "bad_signature")
    old = flask_cookie(login, secret=OLD_SECRET)
    add("rotated_key_fallback", old, "valid", keys=(SECRET, OLD_SECRET),
        user_id="42", roles=["admin"])
    add("rotated_key_dropped", old, "bad_signature", keys=(SECRET,))
    add("expired_under_fallback", old, "expired", keys=(SECRET, OLD_SECRET),
        now=SIGNED_AT + MAX_AGE + 1)

    other_salt = itsdangerous.URLSafeTimedSerializer(SECRET)
    with mock.patch("time.time", return_value=float(SIGNED_AT)):
        add("other_salt", other_salt.dumps(login), "bad_signature")

    add("truncated_signature", plain[:-1], "malformed")
    add("truncated_half", plain[: len(plain) // 2], "malformed")
    add("payload_bit_flipped", flip(plain, 3), "bad_signature")
    sig_at = plain.rindex(".") + 1
    add("signature_bit_flipped", flip(plain, sig_at + 5), "bad_signature")
    ts_at = plain.rindex(".", 0, sig_at - 1) + 1
    add("timestamp_bit_flipped", flip(plain, ts_at + 1), "bad_signature")
    add("compressed_flag_dropped", compressed[1:], "bad_signature")

    # 20 signature bytes take 27 characters; the last one carries 2 unused
    # bits. itsdangerous ignores them, so this variant still verifies there.
    last = plain[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    i = alphabet.index(last)
    variant = plain[:-1] + alphabet[(i & ~3) | ((i & 3) ^ 1)]
    add("signature_noncanonical_bits", variant, "malformed",
        note="itsdangerous ignores the unused low bits; the edge requires canonical base64")
    add("signature_padded", plain + "=", "malformed",
        note="itsdangerous strips and re-adds padding; Flask never writes it")
    add("newline_in_signature", plain[:-4] + "\n" + plain[-4:], "malformed",
        note="Go's base64 decoder skips newlines; the edge must not")
    add("empty", "", "malformed")
    add("no_dots", "garbage", "malformed")
    add("not_base64", "a!b.c.d", "malformed")

    add("valid_signature_not_json", signed_raw(base64_encode(b"not json").decode()),
        "malformed")
    add("valid_signature_bad_zlib", signed_raw("." + base64_encode(b"not zlib").decode()),
        "malformed")
    add("valid_signature_json_not_object", signed_raw(base64_encode(b"[1,2]").decode()),
        "malformed", note="itsdangerous loads it; Flask's session class then fails (500)")
    # A validly signed 8-byte timestamp far in the future; itsdangerous
    # itself crashes converting it to a datetime (OverflowError, a 500 in
    # Flask), the edge must simply call it a future timestamp.
    huge_ts = base64_encode(int_to_bytes(2**64 - 1)).decode()
    add("valid_signature_timestamp_max",
        signed_raw(base64_encode(b"{}").decode() + "." + huge_ts, timestamp=False),
        "future")

    # Signed by the app, but not carriable in the identity headers as the
    # edge read it: a line break would become a space (Go's Header.Write)
    # or fail the request (Go's Transport); servers trim spaces at the
    # ends; roles are joined with commas.
    add("user_id_line_break", flask_cookie({"_user_id": "7\r\nX-Auth-Role: admin"}), "malformed",
        note="Flask accepts it; the edge will not hand the app an identity its headers cannot carry")
    add("user_id_leading_space", flask_cookie({"_user_id": " 7", "role": "user"}), "malformed",
        note="the app would read user 7 once the server trims the header")
    add("role_with_comma", flask_cookie({"_user_id": "7", "role": "user,admin"}), "malformed",
        note="the app would read two roles, admin one of them, from X-Auth-Role")

    # Python keeps an unpaired surrogate in a str, and Flask signs it
    # escaped; UTF-8 has no form for it (a decoder makes it U+FFFD, which
    # is another user's id).
    add("user_id_lone_surrogate", flask_cookie({"_user_id": "\ud800"}), "malformed",
        note="Flask accepts it; read as UTF-8 it would be user \"\ufffd\"")
    add("user_id_replacement_character", flask_cookie({"_user_id": "\ufffd"}), "valid",
        user_id="\ufffd")

    rnd = random.Random(5)
    noise = base64_encode(bytes(rnd.getrandbits(8) for _ in range(3500))).decode()
    add("too_long_for_browsers", interface_cookie({"_user_id": "1", "noise": noise}),
        "too_large", note="browsers drop cookies over 4093 bytes; Flask only warns")
    add("zlib_bomb", interface_cookie({"_user_id": "1", "pad": "0" * 2_000_000}),
        "too_large", note="2 MB of JSON in a 2.7 kB cookie; the edge caps the inflated size")

    out = {
        "generator": "testdata/flask_cookies/gen.py",
        "flask": flask.__version__,
        "itsdangerous": "2.1.2",
        "cookie_name": app.config["SESSION_COOKIE_NAME"],
        "user_key": "_user_id",
        "role_key": "role",
        "vectors": vectors,
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
