"""Turns CustomResourceDefinitions into the strict JSON schemas kubeconform and jsonschema read.

    crd_schemas.py OUT CRD.yaml...   one OUT/<group>/<kind>_<version>.json per version a CRD serves

Called by scripts/crd-schemas.sh with the operators' own CRD files. Each version's `openAPIV3Schema` is
OpenAPI 3.0's dialect of JSON Schema (draft 4's keywords); three of its words mean something a JSON
Schema validator does not know, and are rewritten as Kubernetes applies them:
- an object that lists `properties` takes no other field (the API server prunes or, with strict field
  validation, refuses them), unless it says `x-kubernetes-preserve-unknown-fields` or sets its own
  `additionalProperties`;
- `x-kubernetes-int-or-string` takes an integer or a string;
- `nullable: true` also takes null.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

Schema = dict[str, Any]
DRAFT = "http://json-schema.org/draft-04/schema#"
# Keywords whose value is a schema, and those whose value is a list or a map of schemas.
ONE = ("items", "additionalProperties", "not")
MANY = ("allOf", "anyOf", "oneOf")
NAMED = ("properties", "patternProperties")


def strict(schema: Schema) -> Schema:
    """The schema as a JSON Schema validator must read it to judge a resource as the API server does."""
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    for key in ONE:
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    if isinstance(out.get("items"), list):
        out["items"] = [strict(item) for item in out["items"]]
    for key in MANY:
        if key in out:
            out[key] = [strict(choice) for choice in out[key]]
    for key in NAMED:
        if key in out:
            out[key] = {name: strict(field) for name, field in out[key].items()}
    open_ended = schema.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in schema
    if "properties" in schema and not open_ended:
        out["additionalProperties"] = False
    return out


def schemas_of(definition: Schema) -> dict[Path, Schema]:
    """Each served version of one CRD, by its path `<group>/<kind, lower case>_<version>.json`."""
    spec = definition["spec"]
    kind = spec["names"]["kind"]
    found = {}
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = strict(version["schema"]["openAPIV3Schema"])
        found[Path(spec["group"]) / f"{kind.lower()}_{version['name']}.json"] = {"$schema": DRAFT, **schema}
    return found


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    for source in map(Path, argv[1:]):
        definitions = [d for d in yaml.safe_load_all(source.read_text()) if d]
        for definition in definitions:
            if definition.get("kind") != "CustomResourceDefinition":
                continue
            for path, schema in schemas_of(definition).items():
                (out / path).parent.mkdir(parents=True, exist_ok=True)
                (out / path).write_text(json.dumps(schema, indent=1, sort_keys=True))
                print(f"{source.name} -> {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
