"""Schemathesis hooks for crm-endpoint's contract test (sync/endpoint/tests/schemathesis.rs).

Kiosk routes (/v1/kiosks/{kiosk_id}/...) take only signed requests. These hooks sign every
request to them exactly as a kiosk's sync client does (kiosk_protocol::auth::sign_request):

    x-kiosk-id:        the kiosk id from enrollment
    x-kiosk-timestamp: unix seconds
    x-kiosk-signature: hex HMAC-SHA256(device secret,
                           METHOD \n path-and-query \n timestamp \n hex SHA-256(body as sent))

The signature is computed by a `requests` auth object, which runs on the prepared request: the
body bytes and the path-and-query it signs are the ones sent. The kiosk comes from a real
enrollment made by the test before the run: CRM_KIOSK_ID and CRM_KIOSK_SECRET (base64, as the
enrollment answer gives it).

A generated {kiosk_id} that is a well-formed identifier is replaced by the enrolled kiosk's id, so
valid requests reach the handlers; a malformed one is left as generated (the endpoint must refuse
it). Likewise a well-formed {card_token} of a customer read, a segment change or a kiosk's lookup
becomes CRM_CARD_TOKEN, a customer the test registered, so those answers are real profiles rather
than 404s (erasure keeps its random tokens: it would erase that customer). Nothing else is changed:
every other generated value reaches the endpoint as drawn.
"""

import base64
import hashlib
import hmac
import os
import re
import time
import zlib

import requests
import schemathesis

KIOSK_ID = os.environ["CRM_KIOSK_ID"]
SECRET = base64.b64decode(os.environ["CRM_KIOSK_SECRET"], validate=True)
CARD_TOKEN = os.environ["CRM_CARD_TOKEN"]
IDENT = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
TOKEN = re.compile(r"[0-9a-f]{32}")


class KioskSignature(requests.auth.AuthBase):
    """Signs a prepared request as kiosk KIOSK_ID."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        timestamp = str(int(time.time()))
        to_sign = "\n".join(
            [r.method.upper(), r.path_url, timestamp, hashlib.sha256(body).hexdigest()]
        )
        r.headers["x-kiosk-id"] = KIOSK_ID
        r.headers["x-kiosk-timestamp"] = timestamp
        r.headers["x-kiosk-signature"] = hmac.new(
            SECRET, to_sign.encode("utf-8"), hashlib.sha256
        ).hexdigest()
        return r


SIGNER = KioskSignature()


# A customer file of one row, the test's own customer again (a re-import keeps her): the
# import's schema-valid input, which a generator cannot draw (see map_body).
IMPORT_CSV = f"card_token,store_id,display_name\r\n{CARD_TOKEN},north,Ana\r\n"


@schemathesis.hook
def before_call(ctx, case, kwargs):
    params = case.path_parameters or {}
    token = params.get("card_token")
    if not case.path.endswith("/erase") and isinstance(token, str) and TOKEN.fullmatch(token):
        params["card_token"] = CARD_TOKEN
        case.path_parameters = params
    # The console saves a campaign at its own id: the path's id is the body's.
    if case.path == "/dashboard/api/campaigns/{id}" and isinstance(case.body, dict):
        body_id = case.body.get("id")
        if isinstance(body_id, str) and IDENT.fullmatch(body_id):
            params["id"] = body_id
            case.path_parameters = params
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    if case.path == "/dashboard/api/customers/import" and not negative:
        # Every phase (the coverage phase does not go through map_body): see map_body. A
        # negative case keeps its drawn body, which is refused (400) as it must be.
        case.body = IMPORT_CSV
        kwargs.pop("json", None)
        kwargs["data"] = IMPORT_CSV.encode()
    if not case.path.startswith("/v1/kiosks/"):
        return
    kiosk_id = params.get("kiosk_id")
    if isinstance(kiosk_id, str) and IDENT.fullmatch(kiosk_id):
        params["kiosk_id"] = KIOSK_ID
        case.path_parameters = params
    kwargs["auth"] = SIGNER


def _campaign_rules_hold(body):
    """The rules of a campaign (crm_endpoint::campaigns::check) that JSON Schema cannot state:
    a name and texts that are not blank, ends_on not before starts_on, unique variant names. A body generated as valid
    that breaks one is not valid; it is dropped rather than sent as a valid one."""
    if not isinstance(body, dict):
        return True
    # The name and every text are not blank.
    name = body.get("name")
    if isinstance(name, str) and not name.strip():
        return False
    for field in ("screen_text", "ticket_line"):
        text = body.get(field)
        if isinstance(text, dict) and any(
            isinstance(t, str) and not t.strip() for t in (text.get("es"), text.get("en"))
        ):
            return False
    starts, ends = body.get("starts_on"), body.get("ends_on")
    if isinstance(starts, str) and isinstance(ends, str) and ends < starts:
        return False
    variants = body.get("variants")
    if isinstance(variants, list):
        names = [v.get("name") for v in variants if isinstance(v, dict)]
        if len(names) != len(set(map(str, names))):
            return False
    content = body.get("content")
    if isinstance(content, list):
        ids = [c.get("id") for c in content if isinstance(c, dict)]
        if len(ids) != len(set(map(str, ids))):
            return False
        for item in content:
            image = item.get("image") if isinstance(item, dict) else None
            if isinstance(image, dict) and not _picture_holds(image):
                return False
    # The campaign's picture and its variants': whole pictures, described in both languages.
    pictures = [body.get("image")]
    if isinstance(variants, list):
        pictures += [v.get("image") for v in variants if isinstance(v, dict)]
    for image in pictures:
        if isinstance(image, dict) and not (_picture_holds(image) and _described(image)):
            return False
    coupon = body.get("coupon")
    if isinstance(coupon, dict):
        text = coupon.get("text")
        if isinstance(text, dict) and any(
            isinstance(t, str) and not t.strip() for t in (text.get("es"), text.get("en"))
        ):
            return False
    return True


def _described(image):
    alt = image.get("alt")
    return not isinstance(alt, dict) or all(
        not isinstance(t, str) or t.strip() for t in (alt.get("es"), alt.get("en"))
    )


def _png_whole(b):
    """kiosk_protocol::picture's PNG rule: chunks whole, each CRC-32 right, a 13-byte IHDR
    first, IDAT before IEND, at most 3840 pixels a side."""
    at, size, data = 8, None, False
    while True:
        if at + 12 > len(b):
            return False
        length = int.from_bytes(b[at:at + 4], "big")
        kind, body = b[at + 4:at + 8], b[at + 8:at + 8 + length]
        if len(body) != length or at + 12 + length > len(b):
            return False
        crc = int.from_bytes(b[at + 8 + length:at + 12 + length], "big")
        if zlib.crc32(kind + body) != crc:
            return False
        if size is None:
            if kind != b"IHDR" or length != 13:
                return False
            size = (int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big"))
        elif kind == b"IDAT":
            data = True
        elif kind == b"IEND":
            return data and all(0 < side <= 3840 for side in size)
        at += 12 + length


MAGIC = {
    "image/png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n") and _png_whole(b),
    # Generated bytes are never a whole JPEG or WebP (segments to the end-of-image marker, a
    # RIFF length matching the file, a frame header): such a body is not valid.
    "image/jpeg": lambda b: False,
    "image/webp": lambda b: False,
}


def _picture_holds(image):
    """A picture's bytes must be a whole picture of its type (kiosk_protocol::picture::check,
    which decodes it whole): a rule of crm_endpoint::campaigns::check that JSON
    Schema cannot state."""
    text = image.get("data")
    if not isinstance(text, str):
        return False
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        return False
    if len(data) > 512 * 1024:
        return False
    mime = image.get("mime")
    check = MAGIC.get(mime) if isinstance(mime, str) else None
    return check is not None and check(data)


def _store_config_rules_hold(body):
    """The rules of a store configuration (kiosk_protocol::store_config, shared with
    `kiosk check-config`) that JSON Schema cannot state: distinct service letters, names that are
    not blank, a policy text that is not blank, at least one part set. Bodies breaking them are refused with 400, as they
    must be; they are not schema-valid examples."""
    if not isinstance(body, dict):
        return True
    # Unknown keys are refused (a typo must not pass silently); the schema cannot say so
    # because the parts are flattened into the feed's versioned config.
    if set(body) - {"services", "opening_time", "counters", "staff_pin_sha256", "privacy"}:
        return False
    if all(v is None for v in body.values()):
        return False  # sets no part (nulls are absent parts): refused by rule
    services = body.get("services")
    if isinstance(services, list):
        letters = [repr(s.get("letter")) for s in services if isinstance(s, dict)]
        if len(set(letters)) != len(letters):
            return False
        for s in services:
            name = s.get("name") if isinstance(s, dict) else None
            if isinstance(name, dict) and any(
                not isinstance(v, str) or not v.strip() or len(v) > 60 for v in name.values()
            ):
                return False
    if isinstance(services, list) and any(
        isinstance(s, dict)
        and set(s) - {"letter", "name", "priority", "expected_minutes", "ticket_note"}
        for s in services
    ):
        return False
    privacy = body.get("privacy")
    if isinstance(privacy, dict) and set(privacy) - {"version", "text"}:
        return False
    if isinstance(privacy, dict):
        version = privacy.get("version")
        if isinstance(version, str) and not version.strip():
            return False
        text = privacy.get("text")
        if isinstance(text, dict) and any(
            not isinstance(v, str) or not v.strip() for v in text.values()
        ):
            return False
    return True


def _report_range_holds(query):
    """A report's range, which the schema cannot state: `from` on or before `to`, at most 366
    days (the defaults: `to` today, UTC; `from` six days before `to`)."""
    import datetime

    query = query or {}

    def day(name):
        v = query.get(name)
        if not isinstance(v, str) or not v.strip():
            return None
        try:
            return datetime.date.fromisoformat(v.strip())
        except ValueError:
            return False

    to, frm = day("to"), day("from")
    if to is False or frm is False:
        return True  # a malformed date: the 400 the schema promises
    to = to or datetime.datetime.now(datetime.timezone.utc).date()
    try:
        frm = frm or to - datetime.timedelta(days=6)
    except OverflowError:
        return False
    return frm <= to and (to - frm).days + 1 <= 366
def _grant_holds(body, role_required):
    """crm_endpoint::accounts::check_grant: a regional manager has a region and no store, a store
    manager a store and no region, the others neither (an account change without a role gives
    neither)."""
    if not isinstance(body, dict):
        return True
    role = body.get("role")
    region, store = body.get("region"), body.get("store_id")
    if role is None:
        return role_required or (region is None and store is None)
    if role == "regional-manager":
        return region is not None and store is None
    if role == "store-manager":
        return store is not None and region is None
    return region is None and store is None


def _place_holds(body):
    """A store's place has both coordinates or neither (crm_endpoint::db::places::PlaceUpdate::check:
    half a pair is refused with 400, as it must be)."""
    if not isinstance(body, dict):
        return True
    return (body.get("latitude") is None) == (body.get("longitude") is None)


@schemathesis.hook
def map_body(ctx, body):
    """A customer CSV's rules (columns, card numbers, stores) are not a JSON Schema's, so a drawn
    string is refused (400) though "schema-valid". The import gets a well-formed file (IMPORT_CSV,
    200); sync/endpoint/tests/customers.rs and the import's unit tests check good and bad files."""
    if ctx.operation.path == "/dashboard/api/customers/import" and isinstance(body, str):
        return IMPORT_CSV
    return body


@schemathesis.hook
def filter_case(ctx, case):
    """A whole case, so it applies in every phase (the coverage phase included, where
    `filter_body` does not run)."""
    operation = case.operation
    method = operation.method.upper()
    if operation.path == "/v1/admin/campaigns" and method == "POST":
        return _campaign_rules_hold(case.body)
    if operation.path == "/dashboard/api/campaigns/{id}" and method == "PUT":
        return _campaign_rules_hold(case.body)
    if operation.path == "/v1/admin/stores/{store_id}/config" and method == "PUT":
        return _store_config_rules_hold(case.body)
    if operation.path in ("/dashboard/reports", "/dashboard/reports.csv"):
        return _report_range_holds(case.query)
    if operation.path == "/v1/admin/accounts" and method == "POST":
        return _grant_holds(case.body, True)
    if operation.path == "/v1/admin/accounts/{name}" and method == "PUT":
        return _grant_holds(case.body, False)
    if operation.path == "/v1/admin/stores/{store_id}/location" and method == "PUT":
        return _place_holds(case.body)
    return True
