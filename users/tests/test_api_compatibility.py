"""The documented API changes by additions only: nothing its callers rely on disappears from the schema.

``data/api_surface.json`` is the API's surface when the original system's callers were switched over: every
operation with its response codes, and the properties of every schema component. The schema may grow beyond
it (new paths, operations, responses, properties); removing any of them fails here. After a deliberate,
announced breaking change, regenerate the file with ``python -m users.tests.test_api_compatibility``.
"""

import json
from pathlib import Path

SURFACE = Path(__file__).parent / "data" / "api_surface.json"
METHODS = {"get", "post", "put", "patch", "delete"}


def api_surface() -> dict[str, dict[str, list[str]]]:
    from drf_spectacular.generators import SchemaGenerator  # after django.setup() when run as a script

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {
        f"{method.upper()} {path}": sorted(str(code) for code in operation.get("responses", {}))
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }
    components = {
        name: sorted(component.get("properties", {}))
        for name, component in schema["components"]["schemas"].items()
        if component.get("properties")
    }
    return {"operations": operations, "components": components}


def test_no_operation_response_or_property_of_the_documented_api_is_gone(db):
    recorded = json.loads(SURFACE.read_text())
    current = api_surface()

    missing = {
        kind: {
            name: sorted(set(values) - set(current[kind].get(name, [])))
            for name, values in entries.items()
            if name not in current[kind] or set(values) - set(current[kind][name])
        }
        for kind, entries in recorded.items()
    }
    assert missing == {"operations": {}, "components": {}}


def test_the_caller_paths_are_part_of_the_recorded_surface():
    operations = json.loads(SURFACE.read_text())["operations"]

    for operation in (
        "GET /api/v1/users/",
        "POST /api/v1/users/",
        "PUT /api/v1/users/{id}/",
        "POST /api/v1/users/bulk_info/",
    ):
        assert operation in operations


if __name__ == "__main__":
    import django

    django.setup()
    SURFACE.write_text(json.dumps(api_surface(), indent=1, sort_keys=True) + "\n")
