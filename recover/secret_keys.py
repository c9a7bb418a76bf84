"""Which keys hold a secret, and how a report or a call record shows them: masked.

**The rule** (one home: :func:`is_secret_key`; ``sentinel plan`` and every call record use
it through :func:`mask`; recover/sealed.py seals what it finds). A key is secret when it is
in ``recovery.spec.secret_properties``, or when one of its words (split on ``.``, ``_``, ``-`` and camelCase) is or contains
password/passwd/passphrase/secret/credential, is ``pwd``/``pw``/``pass``, or is/ends with
``token``/``key`` — unless its *last* word says the value is only about the secret
(``...credential.provider.path``, ``...secret.file``, ``...key.provider.uri``,
``Ec2KeyName``, ``...KeyId``; ``...keystore.type`` has no such word at all, and neither has
``hive.server2.authentication``). Over-sealing a harmless value costs
nothing but readability (it is restored at LAUNCH); under-sealing leaks, so the rule leans
to sealing and the explicit list adds what it misses.

The ground of recover/: call records (recover/calls.py) mask with it and sealing
(recover/sealed.py) finds the secrets with it, so it imports neither.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

SEALED_PREFIX = "sentinel-sealed:v1:"
REF_PREFIX = "sentinel-ref:v1:"
MASK = "****"

_WORDS = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_CONTAINS = ("password", "passwd", "passphrase", "secret", "credential")
_EXACT = frozenset({"pwd", "pass", "pw"})
_ENDS = ("token", "key")
# A last word that makes the value a description of the secret (where, what kind), not the secret.
_ABOUT_ONLY = frozenset({
    "type", "provider", "providers", "path", "file", "dir", "location", "uri", "url", "class", "classes", "impl",
    "enabled", "enable", "required", "algorithm", "alias", "name", "names", "format", "length", "size", "bits",
    "id", "ids", "arn", "expiry", "lifetime", "interval", "ttl", "validity", "renew", "timeout", "ms", "user",
    "username", "principal", "pattern", "mode", "version",
})
# Names that match the words but are not secrets (pagination, idempotency, the "Key" of a pair).
_NOT_SECRET = frozenset({"NextToken", "ClientToken", "IdempotencyToken", "ContinuationToken", "Marker",
                         "Key"})  # "Key" names a tag or a property: the name, not the value
# Keys whose string values are descriptions written by sentinel, never secret values.
_TEXT_KEYS = frozenset({"field", "reason"})


def is_secret_key(key: str, extra: Collection[str] = ()) -> bool:
    """Whether a property (or API parameter) named ``key`` holds a secret (module docstring)."""
    if key in extra:
        return True
    if key in _NOT_SECRET:
        return False
    words = [w.lower() for w in _WORDS.split(key) if w]
    if not words:
        return False
    hits = [i for i, w in enumerate(words)
            if any(c in w for c in _CONTAINS) or w in _EXACT or w.endswith(_ENDS)]
    if not hits:
        return False
    return not (words[-1] in _ABOUT_ONLY and hits[-1] != len(words) - 1)


def is_sealed(value: Any) -> bool:
    """A stored form that is safe to show (ciphertext, a reference, or the mask)."""
    return isinstance(value, str) and (value.startswith((SEALED_PREFIX, REF_PREFIX)) or value == MASK)


def mask(value: Any, key: str = "", extra: Collection[str] = ()) -> Any:
    """A copy of ``value`` (any JSON-like data: a report, call parameters) with the value of
    every secret key replaced by ``****``; sealed values and references are kept (they are
    safe, and show that the secret is there). ``{"Key": k, "Value": v}`` pairs (tags, step
    properties) are judged by ``k``."""
    if isinstance(value, dict):
        if set(value) == {"Key", "Value"} and is_secret_key(str(value["Key"]), extra) and not is_sealed(value["Value"]):
            return {"Key": value["Key"], "Value": MASK}
        return {k: mask(v, str(k), extra) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v, key, extra) for v in value]
    if isinstance(value, str | bytes) and key not in _TEXT_KEYS and is_secret_key(key, extra) and not is_sealed(value):
        return MASK
    return value


# ``name=value`` / ``name: value`` / ``"name": "value"`` in free text (a log line, a JVM's
# -D options in a thread dump, a config dump): the value is masked when ``name`` is secret by
# the rule above.
_ASSIGNMENT = re.compile(r"""(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)(?P<sep>["']?\s*[=:]\s*)"""
                         r"""(?P<value>"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|[^\s,;&"'<>]+)""")
# A command-line flag with its value after a space: ``--password SECRET``, ``-p:secret`` aside.
_FLAG = re.compile(r"(?P<flag>(?<![\w-])--?(?P<key>[A-Za-z][A-Za-z0-9_.\-]*))(?P<sep>\s+)(?P<value>[^\s\-][^\s]*)")
# User info in a URL: ``scheme://user:password@host`` (JDBC, s3a, http).
_URL_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*:)(?P<value>[^\s/@]+)(?=@)")
# HTTP credentials: ``Authorization: Bearer x`` / ``Basic x`` (HiveServer2 in http mode logs headers).
_AUTH_HEADER = re.compile(r"(?i)(?P<head>\b(?:proxy-)?authorization\s*[:=]\s*(?:bearer|basic|negotiate|digest)?\s*)"
                          r"(?P<value>[^\s,;]+)")
# Hadoop/Hive XML: <name>…password</name> then <value>…</value>.
_XML_PROPERTY = re.compile(r"(?P<name><name>\s*(?P<key>[^<]+?)\s*</name>\s*<value>)(?P<value>[^<]*)(?=</value>)")


def mask_text(text: str, known: Collection[str] = ()) -> str:
    """``text`` (a command's output) with every known secret value and every value assigned to
    a secret-looking name replaced by ``****``. Known values first: a password printed on its
    own (no name beside it) is only found that way."""
    for value in sorted({v for v in known if v and len(v) >= 4}, key=len, reverse=True):
        text = text.replace(value, MASK)

    def assignment(m: re.Match[str]) -> str:
        if m["value"].strip("\"'") in ("", MASK):
            return m[0]
        if not is_secret_key(m["key"]):  # "check failed: x.Password=y": the value may hold an assignment
            return f"{m['key']}{m['sep']}{_ASSIGNMENT.sub(assignment, m['value'])}"
        return f"{m['key']}{m['sep']}{MASK}"

    def xml(m: re.Match[str]) -> str:
        return f"{m['name']}{MASK}" if is_secret_key(m["key"]) and m["value"] else m[0]

    def flag(m: re.Match[str]) -> str:
        return f"{m['flag']}{m['sep']}{MASK}" if is_secret_key(m["key"]) and m["value"] != MASK else m[0]

    text = _AUTH_HEADER.sub(lambda m: f"{m['head']}{MASK}", text)
    text = _URL_USERINFO.sub(lambda m: f"{m['head']}{MASK}", text)
    text = _FLAG.sub(flag, text)
    return _ASSIGNMENT.sub(assignment, _XML_PROPERTY.sub(xml, text))
