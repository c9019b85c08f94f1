"""Property tests: any bytes given to the message parsers give a message or a MessageError, nothing else."""

import json

from hypothesis import given
from hypothesis import strategies as st

from coin_platform.events.schemas import Candidate, Decision, MessageError
from coin_platform_tests.events.test_schemas import make_candidate

PARSERS = (Candidate.from_json, Decision.from_json)
PLACEHOLDER = "@@value@@"

# JSON values, including what Python's json module reads without complaint but the
# platform cannot use: huge integers, NaN / Infinity, odd strings, nested containers.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**600), max_value=10**600),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["2026-03-01T12:00:00+00:00", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
# Text spliced in as a value: what json.dumps will not write (over 4300 digits, deep nesting).
literals = st.one_of(
    st.integers(min_value=4_000, max_value=6_000).map(lambda n: "9" * n),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=5_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(["1e400", "-1e400", "NaN", "Infinity", "-0.0", "1" + "0" * 400]),
)
CANDIDATE = make_candidate()
DECISION = Decision(
    candidate_id=CANDIDATE.id,
    strategy=CANDIDATE.strategy,
    symbol=CANDIDATE.symbol,
    interval=CANDIDATE.interval,
    signal=CANDIDATE.signal,
    action="buy",
    confidence=0.75,
    model_version="rules-v1",
    price=CANDIDATE.price,
    candle_close_time=CANDIDATE.close_time,
    inputs={"rsi_14": 28.5},
    decided_at=CANDIDATE.detected_at,
)
VALID = {"candidate": json.loads(CANDIDATE.to_json()), "decision": json.loads(DECISION.to_json())}


def parses_or_refuses(raw: bytes) -> None:
    for parse in PARSERS:
        try:
            parse(raw)
        except MessageError:
            pass


@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_give_a_message_or_a_message_error(raw):
    parses_or_refuses(raw)


@given(json_values, st.sampled_from(["utf-8", "utf-16", "utf-32", "latin-1"]))
def test_arbitrary_json_in_any_encoding_gives_a_message_or_a_message_error(value, encoding):
    try:
        raw = json.dumps(value).encode(encoding)
    except UnicodeEncodeError:
        raw = json.dumps(value).encode("utf-8")
    parses_or_refuses(raw)


@given(
    st.sampled_from(sorted(VALID)),
    st.data(),
    st.one_of(json_values.map(json.dumps), literals),
)
def test_a_valid_message_with_any_field_replaced_gives_a_message_or_a_message_error(kind, data, replacement):
    body = dict(VALID[kind])
    field = data.draw(st.sampled_from(sorted(body)) | st.text(max_size=10), label="field")
    body[field] = PLACEHOLDER
    raw = json.dumps(body).replace(json.dumps(PLACEHOLDER), replacement)
    parses_or_refuses(raw.encode())
