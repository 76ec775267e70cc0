"""A deliberately small JSON-Schema subset checker for ``show --json`` reports.

It understands what ``show-schema.json`` uses: ``$ref`` (local ``#/...`` pointers),
``oneOf``, ``type`` (string or list), ``const``, ``properties``, ``required``,
``items`` and ``additionalProperties``.

``additionalProperties: false`` is *not* enforced: wheelvet may add keys of its own at
the top level and inside ``policy_upgrades`` entries. A schema-valued
``additionalProperties`` (e.g. "every value of ``versioned_symbols`` is a list of
strings") *is* applied to the keys not named in ``properties``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent

_JSON_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def find_schema() -> Path | None:
    """show-schema.json: $WHEELVET_SHOW_SCHEMA, then the copy beside this file, then shared/."""
    candidates = []
    if os.environ.get("WHEELVET_SHOW_SCHEMA"):
        candidates.append(Path(os.environ["WHEELVET_SHOW_SCHEMA"]))
    # the copy kept with the tests (auditwheel 6.8.2's schema, shared/reference/)
    candidates.append(Path(__file__).resolve().parent / "show-schema.json")
    candidates.append(REPO_ROOT.parent / "shared" / "reference" / "show-schema.json")
    candidates.append(REPO_ROOT / "shared" / "reference" / "show-schema.json")
    for c in candidates:
        if c.is_file():
            return c
    return None


def load_schema(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for part in ref.lstrip("#").split("/"):
        if part:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _same_json_value(a: Any, b: Any) -> bool:
    # JSON equality: booleans are not numbers; 1 == 1.0.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def check(instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, path: str = "$") -> list[str]:
    """Return a list of human-readable problems (empty when ``instance`` conforms)."""
    root = schema if root is None else root
    errors: list[str] = []

    if "$ref" in schema:
        errors += check(instance, _resolve(root, schema["$ref"]), root, path)

    if "oneOf" in schema:
        results = [check(instance, sub, root, path) for sub in schema["oneOf"]]
        ok = [r for r in results if not r]
        if len(ok) != 1:
            detail = "; ".join(f"[{i}] " + ", ".join(r[:3]) for i, r in enumerate(results) if r)
            errors.append(f"{path}: matches {len(ok)} of the oneOf alternatives (need exactly 1): {detail}")

    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_JSON_TYPES[t](instance) for t in types):
            errors.append(f"{path}: expected type {'/'.join(types)}, got {type(instance).__name__} {instance!r:.80}")
            return errors  # nothing below makes sense on the wrong type

    if "const" in schema and not _same_json_value(instance, schema["const"]):
        errors.append(f"{path}: expected const {schema['const']!r}, got {instance!r:.80}")

    if isinstance(instance, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in instance:
                errors.append(f"{path}: missing required key {key!r}")
        for key, value in instance.items():
            sub = f"{path}.{key}"
            if key in props:
                errors += check(value, props[key], root, sub)
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += check(value, schema["additionalProperties"], root, sub)
            # additionalProperties: false is intentionally not enforced.

    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(instance):
            errors += check(item, schema["items"], root, f"{path}[{i}]")

    return errors


def check_platform_report(report: Any, schema_root: dict[str, Any]) -> list[str]:
    """Check a report for a platform wheel against ``$defs/result_platform``."""
    return check(report, _resolve(schema_root, "#/$defs/result_platform"), schema_root)
