"""Structured answers are accepted only when they are exactly a schema-valid object."""

from __future__ import annotations

from actors.backends.structured import (
    bound_strings,
    count_free_strings,
    parse_structured,
    validate,
)

VERDICT = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["YES", "NO", "NA"]},
        "reasoning": {"type": "string", "maxLength": 200},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["verdict", "reasoning"],
    "additionalProperties": False,
}


def test_valid_object_parses():
    data, error = parse_structured('{"verdict": "YES", "reasoning": "asked openly", "confidence": 0.8}', VERDICT)
    assert error is None and data == {"verdict": "YES", "reasoning": "asked openly", "confidence": 0.8}


def test_one_code_fence_is_tolerated():
    data, error = parse_structured('```json\n{"verdict": "NO", "reasoning": "r"}\n```', VERDICT)
    assert error is None and data["verdict"] == "NO"


def test_prose_around_json_is_an_error_not_a_guess():
    data, error = parse_structured('Sure! {"verdict": "YES", "reasoning": "r"}', VERDICT)
    assert data is None and "not valid JSON" in error


def test_truncated_json_is_an_error():
    data, error = parse_structured('{"verdict": "YES", "reasoning": "the coach', VERDICT)
    assert data is None and "not valid JSON" in error


def test_schema_violations_are_named():
    data, error = parse_structured('{"verdict": "MAYBE", "extra": 1, "confidence": 2}', VERDICT)
    assert data is None
    assert "'MAYBE' is not one of" in error
    assert "missing required field 'reasoning'" in error
    assert "unexpected field 'extra'" in error
    assert "above the maximum" in error


def test_non_object_and_empty_answers():
    assert parse_structured("[1, 2]", VERDICT)[1].startswith("answer is JSON but not an object")
    assert parse_structured("   ", VERDICT)[1].startswith("empty answer")


def test_types_refs_and_arrays():
    schema = {
        "$defs": {"item": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}},
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "maxItems": 2},
            "flag": {"type": "boolean"},
        },
    }
    assert validate({"items": [{"id": 1}, {"id": 2.0}], "flag": True}, schema) == []
    problems = validate({"items": [{"id": True}, {}, {"id": 3}], "flag": 1}, schema)
    assert "$.items: more than 2 items" in problems
    assert "$.items[0].id: expected integer, got boolean" in problems
    assert "$.items[1]: missing required field 'id'" in problems
    assert "$.flag: expected boolean, got integer" in problems


def test_bound_strings_caps_only_free_text():
    schema = {
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": ["YES", "NO"]},
            "reasoning": {"type": "string"},
            "quote": {"type": "string", "maxLength": 50},
            "notes": {"type": "array", "items": {"type": "string", "maxLength": 900}},
        },
    }
    bounded = bound_strings(schema, 100)
    props = bounded["properties"]
    assert "maxLength" not in props["verdict"]
    assert props["reasoning"]["maxLength"] == 100
    assert props["quote"]["maxLength"] == 50
    assert props["notes"]["items"]["maxLength"] == 100
    assert "maxLength" not in schema["properties"]["reasoning"]  # the caller's schema is untouched
    assert count_free_strings(schema) == 3


def test_raw_newline_inside_a_string_is_read_as_written():
    data, error = parse_structured('{"verdict": "YES", "reasoning": "line one\nline two"}', VERDICT)
    assert error is None and data["reasoning"] == "line one\nline two"


def test_skeleton_counts_keys_punctuation_and_longest_enum():
    from actors.backends.structured import skeleton_chars

    assert skeleton_chars(
        {"type": "object", "properties": {"v": {"enum": ["YES", "NO"]}, "r": {"type": "string"}}}
    ) == 2 + (3 + 4 + 5) + (3 + 4 + 2)
