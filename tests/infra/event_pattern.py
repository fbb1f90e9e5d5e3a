"""EventBridge event-pattern matching, as documented ("Amazon EventBridge event patterns";
"Content filtering"), for testing the tamper rules against CloudTrail events offline.

- A pattern is a JSON object whose leaves are arrays of matchers; every field of the pattern
  must match (AND), any matcher of a leaf may (OR).
- A leaf matches when some matcher matches the event's value, or, when the event's value is
  an array, any of its elements. Nested objects recurse; an array of objects in the event
  matches when any element does.
- Matchers: exact scalars (strings, numbers, booleans, null), {"prefix"}, {"suffix"},
  {"equals-ignore-case"}, {"anything-but": scalar | [scalars] | {"prefix"|"suffix"}},
  {"exists": bool} and {"wildcard"}. Anything else ($or, numeric, cidr) raises, so a rule that
  starts using it cannot pass a test this model does not understand.
"""
from __future__ import annotations

import re
from typing import Any

MISSING = object()


def matches(pattern: dict, event: Any) -> bool:
    if not isinstance(pattern, dict):
        raise ValueError(f"a pattern is an object, not {pattern!r}")
    for key, sub in pattern.items():
        if key.startswith("$"):
            raise NotImplementedError(f"pattern operator {key}")
        value = event.get(key, MISSING) if isinstance(event, dict) else MISSING
        if isinstance(sub, dict):
            if not _object_matches(sub, value):
                return False
        elif isinstance(sub, list):
            if not _leaf_matches(sub, value):
                return False
        else:
            raise ValueError(f"pattern leaf {key} must be an array, not {sub!r}")
    return True


def _object_matches(sub: dict, value: Any) -> bool:
    if isinstance(value, list):
        return any(isinstance(v, dict) and matches(sub, v) for v in value)
    return isinstance(value, dict) and matches(sub, value)


def _leaf_matches(matchers: list, value: Any) -> bool:
    if value is MISSING:
        return any(isinstance(m, dict) and m.get("exists") is False for m in matchers)
    values = value if isinstance(value, list) else [value]
    return any(_matcher_matches(m, v) for m in matchers for v in values)


def _matcher_matches(matcher: Any, value: Any) -> bool:
    if not isinstance(matcher, dict):
        return _scalar_equal(matcher, value)
    if len(matcher) != 1:
        raise ValueError(f"a content filter has one key: {matcher!r}")
    (kind, arg), = matcher.items()
    if kind == "exists":
        return bool(arg)  # the value is present (missing values are handled by the caller)
    if kind == "prefix":
        return isinstance(value, str) and value.startswith(_text(arg))
    if kind == "suffix":
        return isinstance(value, str) and value.endswith(_text(arg))
    if kind == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(arg).lower()
    if kind == "wildcard":
        return isinstance(value, str) and re.fullmatch(".*".join(map(re.escape, str(arg).split("*"))), value) is not None
    if kind == "anything-but":
        if isinstance(arg, dict):
            return not _matcher_matches(arg, value)
        excluded = arg if isinstance(arg, list) else [arg]
        return not any(_matcher_matches(e, value) for e in excluded)
    raise NotImplementedError(f"content filter {kind}")


def _scalar_equal(a: Any, b: Any) -> bool:
    """JSON equality: "true" is not true, 1 is 1.0, null is null."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _text(arg: Any) -> str:
    if isinstance(arg, dict):
        raise NotImplementedError(f"nested filter {arg!r}")
    return str(arg)
