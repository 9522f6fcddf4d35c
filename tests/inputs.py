"""Hypothesis strategies for what an attacker sends: any JSON value, any Unicode, any depth."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: Any code point, lone surrogates included (Hypothesis leaves them out unless asked).
any_text = st.text(st.characters(exclude_categories=()), max_size=40)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text
)

#: Any JSON value of modest size, strings of any Unicode, keys too.
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)


def _nested(depth: int, opener: str) -> str:
    closer = "]" if opener == "[" else "}"
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + closer * depth


#: Deeply nested documents, closed and unclosed, well past the interpreter's recursion limit.
deep_documents = st.builds(
    lambda depth, opener, closed: _nested(depth, opener) if closed else opener * depth,
    st.integers(min_value=0, max_value=5000),
    st.sampled_from(["[", "{"]),
    st.booleans(),
)
