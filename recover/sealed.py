"""Secret configuration properties in a RunJobFlow request: which ones, how they are stored,
and how LAUNCH gets the clear value back.

Why: the clone copies cluster ``Configurations`` verbatim, and a hive-site
``javax.jdo.option.ConnectionPassword`` (the metastore database password) then lived in the
``spec`` item, in the incident, in ``status --json`` and in dry-run reports. Now a spec
holds a secret only *sealed*, from the moment it is built (recover/spec.py ``resolve`` and
``capture_last_known_good``) to the moment RunJobFlow is sent (:func:`unseal_spec`, called
by LAUNCH right before the call; the call record keeps the sealed form).

The rule that says which keys are secret, and :func:`mask`, live in recover/secret_keys.py.

**How a secret is stored** (per target, ``recovery.spec``):

- ``kms_key_id`` set: ``sentinel-sealed:v1:<target>:<base64 KMS ciphertext>``, encrypted
  with the encryption context ``{"sentinel:use": "emr-spec", "sentinel:target": <target>}``
  (the IAM policy allows Encrypt/Decrypt only with ``sentinel:use=emr-spec``; the target in
  the context means a spec copied to another target's item does not decrypt there).
- no key: a reference to where the value came from, read again at LAUNCH:
  ``sentinel-ref:v1:<cluster id>`` for a clone (DescribeCluster of that cluster, which EMR
  answers for about two months after a cluster ended) and ``sentinel-ref:v1:file:<path>``
  for a spec file (the file, read again). Nothing secret is stored, and nothing new is
  trusted: whoever may describe the cluster or read the file could read it already. A
  secret with no source to refer to (none known today) makes SNAPSHOT fail with the fix.
- dry run (``sentinel plan``, ``tick --dry-run``, ``dry_run: true``): ``****``. Nothing is
  sent, so nothing needs the value, and a plan needs no KMS permission.

KMS calls go to the boto3 client directly, not through :class:`recover.calls.AwsCalls`:
the parameters of Encrypt are the secret itself and must not be recorded.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from monitor.core.errors import SentinelError
from monitor.core.faults import AwsError, translate
from recover.calls import AwsCalls
from recover.facades import Emr, Kms
from recover.secret_keys import MASK, REF_PREFIX, SEALED_PREFIX, is_sealed, is_secret_key
from recover.spec_file import SpecError, read_spec_file

FILE_REF = "file:"
CONTEXT_USE = "emr-spec"
KERBEROS_SECRET_KEYS = ("KdcAdminPassword", "CrossRealmTrustPrincipalPassword", "ADDomainJoinPassword")


class SealError(SentinelError):
    """A secret could not be sealed or unsealed; the message names the property, never its value."""


# ------------------------------------------------------------------ where secrets sit in a request

@dataclass(frozen=True)
class Slot:
    """One secret in a request: the mapping that holds it, its key, and where it is (for
    messages and for finding the same property on the source cluster)."""

    holder: dict[str, Any]
    key: str
    classification: tuple[str, ...]  # () for request fields (KerberosAttributes)

    @property
    def label(self) -> str:
        return "/".join((*self.classification, self.key)) if self.classification else f"KerberosAttributes.{self.key}"


def _configurations(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[dict[str, Any], tuple[str, ...]]]:
    """Every Configuration object (``Classification``/``Properties``) anywhere in ``node``,
    with its classification path: top level, instance groups, fleets' instance types."""
    if isinstance(node, list):
        for item in node:
            yield from _configurations(item, path)
    elif isinstance(node, dict):
        here = path
        if "Classification" in node or "Properties" in node:
            here = (*path, str(node.get("Classification") or ""))
            yield node, here
        for key, value in node.items():
            if key != "Properties":
                yield from _configurations(value, here)


def secret_slots(request: dict[str, Any], extra: Collection[str] = ()) -> list[Slot]:
    """Where ``request`` holds secret values (configuration properties and Kerberos passwords)."""
    slots = []
    for conf, path in _configurations(request):
        props = conf.get("Properties")
        if isinstance(props, dict):
            slots += [Slot(props, str(k), path) for k, v in props.items() if isinstance(v, str) and is_secret_key(str(k), extra)]
    kerberos = request.get("KerberosAttributes")
    if isinstance(kerberos, dict):
        slots += [Slot(kerberos, k, ()) for k in KERBEROS_SECRET_KEYS if isinstance(kerberos.get(k), str)]
    return slots


def secret_labels(request: dict[str, Any], extra: Collection[str] = ()) -> list[str]:
    """The names (never the values) of the secrets in ``request``, e.g. ``hive-site/javax.jdo...``."""
    return [s.label for s in secret_slots(request, extra)]


# ------------------------------------------------------------------ seal


def encryption_context(target: str) -> dict[str, str]:
    return {"sentinel:use": CONTEXT_USE, "sentinel:target": target}


def seal_spec(kms: Any, request: dict[str, Any], *, target: str, secret_properties: Collection[str] = (),
              key_id: str | None = None, source_cluster_id: str | None = None, source_file: str | None = None,
              dry_run: bool = False) -> dict[str, Any]:
    """A copy of ``request`` in which every secret is sealed (module docstring): KMS
    ciphertext with ``key_id``, else a reference to ``source_cluster_id`` or
    ``source_file``, ``****`` in a dry run. Values already sealed are kept (a last known
    good spec is sealed when captured).

    ``kms`` is a boto3 KMS client (only used with ``key_id``, not in a dry run). Raises
    :class:`SealError` when a secret can be neither encrypted nor referenced.
    """
    out = copy.deepcopy(request)
    for slot in secret_slots(out, secret_properties):
        value = slot.holder[slot.key]
        if is_sealed(value) and (value != MASK or dry_run):  # a literal "****" is sealed like any value
            continue
        if dry_run:
            slot.holder[slot.key] = MASK
        elif key_id:
            slot.holder[slot.key] = _encrypt(kms, key_id, target, value, slot.label)
        elif source_file:
            slot.holder[slot.key] = f"{REF_PREFIX}{FILE_REF}{source_file}"
        elif source_cluster_id and slot.classification:
            slot.holder[slot.key] = REF_PREFIX + source_cluster_id
        else:
            raise SealError(f"{slot.label} is a secret and cannot be stored in clear, and there is no source to "
                            "read it again from at LAUNCH: set recovery.spec.kms_key_id so sentinel stores it "
                            "encrypted")
    return out


def _encrypt(kms: Any, key_id: str, target: str, value: str, label: str) -> str:
    try:
        blob = Kms(kms).encrypt(key_id, value.encode("utf-8"), encryption_context(target))
    except Exception as exc:  # never include the request (the secret) in the message
        raise _kms_failure(exc, "encrypt", f"{label}: KMS Encrypt with {key_id} failed") from None
    return f"{SEALED_PREFIX}{target}:{base64.b64encode(blob).decode('ascii')}"


def _kms_failure(exc: Exception, op: str, what: str) -> Exception:
    """A KMS error as the fault contract says: a transient one (throttled, KMS internal error,
    dependency timeout) is an :class:`~monitor.core.faults.AwsError` the phase waits out and
    retries; a final one (key disabled, wrong ciphertext) is a :class:`SealError`, which fails
    the phase. Neither message carries the request (the secret)."""
    err = translate(exc, "kms", op)
    if err.transient:
        return AwsError("kms", op, err.code, f"{what} ({err.code}, transient: retried on a later tick)",
                        fault=err.fault)
    return SealError(f"{what} ({err.code})")


# ------------------------------------------------------------------ unseal


def unseal_spec(aws: AwsCalls, request: dict[str, Any]) -> dict[str, Any]:
    """The request with every sealed value and reference replaced by the clear value: what
    RunJobFlow must send. In a dry run the request is returned unchanged (nothing is sent).
    Every sealed form is opened whatever its key (the rule or the list may have changed
    since it was sealed).

    References are read back from the source cluster through ``aws`` (one recorded
    DescribeCluster per cluster, plus ListInstanceGroups/Fleets when a property is not in
    the cluster-level configuration); KMS is called directly (not recorded). Raises
    :class:`SealError` (naming the property) when a value cannot be recovered: LAUNCH must
    then fail rather than launch a cluster with a wrong password.
    """
    if aws.dry_run:
        return request
    out = copy.deepcopy(request)
    sources: dict[str, dict[tuple[tuple[str, ...], str], str]] = {}
    for slot in _sealed_slots(out):
        value = str(slot.holder[slot.key])
        if value.startswith(SEALED_PREFIX):
            slot.holder[slot.key] = _decrypt(aws.clients.client("kms"), value, slot.label)
        elif value.startswith(REF_PREFIX):
            source = value[len(REF_PREFIX):]
            if source not in sources:
                sources[source] = _file_properties(source[len(FILE_REF):]) if source.startswith(FILE_REF) \
                    else _cluster_properties(aws, source)
            found = sources[source].get((slot.classification, slot.key))
            if found is None or is_sealed(found):
                raise SealError(f"{slot.label}: not found in {source}, which the spec refers to for its value; "
                                "set recovery.spec.kms_key_id (sealed specs need no source at LAUNCH)")
            slot.holder[slot.key] = found
        else:
            raise SealError(f"{slot.label}: masked in this spec (it comes from a dry run): it cannot be sent")
    return out


def _sealed_slots(request: dict[str, Any]) -> list[Slot]:
    """Every slot holding a sealed form, whatever its key."""
    slots = []
    for conf, path in _configurations(request):
        props = conf.get("Properties")
        if isinstance(props, dict):
            slots += [Slot(props, str(k), path) for k, v in props.items() if is_sealed(v)]
    kerberos = request.get("KerberosAttributes")
    if isinstance(kerberos, dict):
        slots += [Slot(kerberos, str(k), ()) for k, v in kerberos.items() if is_sealed(v)]
    return slots


def _decrypt(kms: Any, value: str, label: str) -> str:
    target, _, b64 = value[len(SEALED_PREFIX):].partition(":")
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise SealError(f"{label}: the sealed value is damaged (not base64)") from None
    try:
        plain = Kms(kms).decrypt(blob, encryption_context(target))
    except Exception as exc:
        raise _kms_failure(exc, "decrypt", f"{label}: KMS Decrypt failed (sealed for target {target!r})") from None
    return bytes(plain).decode("utf-8")


def _file_properties(path: str) -> dict[tuple[tuple[str, ...], str], str]:
    """The spec file read again (same lookup as SNAPSHOT: recover/spec.py)."""
    try:
        request = read_spec_file(path)
    except SpecError as exc:
        raise SealError(f"the spec file the sealed spec refers to cannot be read again: {exc}") from None
    table = _properties_of(request)
    kerberos = request.get("KerberosAttributes")
    if isinstance(kerberos, dict):
        table.update({((), str(k)): v for k, v in kerberos.items() if isinstance(v, str)})
    return table


def _cluster_properties(aws: AwsCalls, cluster_id: str) -> dict[tuple[tuple[str, ...], str], str]:
    """(classification path, key) → value, cluster-level configuration first, then the
    instance groups' or fleets' (read only when the cluster level does not have them all)."""
    emr = Emr(aws)
    cluster = emr.describe_cluster(cluster_id)
    table = _properties_of(cluster.get("Configurations") or [])
    fleet = cluster.get("InstanceCollectionType") == "INSTANCE_FLEET"
    groups = partial(emr.list_instance_fleets if fleet else emr.list_instance_groups, cluster_id)
    return _LazyTable(table, groups)


class _LazyTable(dict[tuple[tuple[str, ...], str], str]):
    """The cluster-level table; a miss reads the groups once and looks there."""

    def __init__(self, table: dict[tuple[tuple[str, ...], str], str], more: Callable[[], Iterable[Any]]) -> None:
        super().__init__(table)
        self._more: Callable[[], Iterable[Any]] | None = more

    def get(self, key: tuple[tuple[str, ...], str], default: Any = None) -> Any:
        if key not in self and self._more is not None:
            more, self._more = self._more, None
            for k, v in _properties_of(list(more())).items():
                self.setdefault(k, v)
        return super().get(key, default)


def _properties_of(node: Any) -> dict[tuple[tuple[str, ...], str], str]:
    table: dict[tuple[tuple[str, ...], str], str] = {}
    for conf, path in _configurations(node):
        props = conf.get("Properties")
        for k, v in (props.items() if isinstance(props, dict) else ()):
            if isinstance(v, str):
                table.setdefault((path, str(k)), v)
    return table
