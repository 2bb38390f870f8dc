"""join_below: the one way a consumer's sub-path and query are put onto a dataset's baseUrl."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from connector.domain.backend_urls import PathRefused, join_below, sub_path_segments
from tests.test_dataplane_paths import TAILS, TRAVERSALS, below_base

BASE = "http://backend.internal:8080/source/passports"


@pytest.mark.parametrize("raw", TRAVERSALS)
def test_every_traversal_form_is_refused(raw: str) -> None:
    with pytest.raises(PathRefused, match="may not leave the dataset's address"):
        join_below(BASE, raw)


@given(TAILS)
def test_whatever_is_accepted_stays_below_the_base(raw: str) -> None:
    try:
        url = join_below(BASE, raw)
    except PathRefused:
        return
    sent = URL(url, encoded=True)
    assert sent.host == "backend.internal" and sent.port == 8080
    assert below_base(sent.raw_path) and below_base(URL(url).raw_path)  # also as a client that re-normalises


_PLAIN = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/\\%;"), min_size=1, max_size=12
).filter(
    lambda s: (
        unicodedata.normalize("NFKC", s) not in (".", "..")
        and not any(c in unicodedata.normalize("NFKC", s) for c in "/\\%;")
    )
)


@given(st.lists(_PLAIN, min_size=1, max_size=5))
def test_ordinary_segments_reach_the_backend_as_sent(segments: list[str]) -> None:
    raw = "/".join(quote(s, safe="") for s in segments)
    url = URL(join_below(BASE, raw), encoded=True)
    assert url.path == "/source/passports/" + "/".join(segments)
    assert sub_path_segments(raw) == segments


def test_a_trailing_slash_is_kept_and_an_empty_sub_path_is_the_base() -> None:
    assert join_below(BASE, "BAT-1/") == BASE + "/BAT-1/"
    assert join_below(BASE + "/", "BAT-1") == BASE + "/BAT-1"
    assert join_below(BASE, "") == BASE
    assert join_below("http://backend.internal", "BAT-1") == "http://backend.internal/BAT-1"


def test_the_sub_path_goes_into_the_path_even_when_the_base_has_a_query() -> None:
    url = join_below("http://b.internal/api?tenant=7", "BAT-1", [("version", "2")])
    assert url == "http://b.internal/api/BAT-1?tenant=7&version=2"


def test_query_parameters_are_re_encoded_from_their_values() -> None:
    url = join_below(BASE, "", [("x", "&admin=true"), ("y", "#frag"), ("z", "1 2"), ("empty", "")])
    pairs = [("x", "&admin=true"), ("y", "#frag"), ("z", "1 2"), ("empty", "")]
    assert list(URL(url, encoded=True).query.items()) == pairs
    assert url.endswith("?x=%26admin%3Dtrue&y=%23frag&z=1%202&empty=")


def test_a_parameter_the_base_fixes_cannot_be_given_again() -> None:
    with pytest.raises(PathRefused, match="'tenant' is fixed by the dataset"):
        join_below("http://b.internal/api?tenant=7", "", [("tenant", "8")])


@pytest.mark.parametrize("value", ["a\x00b", "line\nbreak", "\x7f"])
def test_control_characters_in_the_query_are_refused(value: str) -> None:
    with pytest.raises(PathRefused, match="control character"):
        join_below(BASE, "", [("q", value)])


def test_the_refusal_names_the_segment_and_echoes_only_the_consumers_input() -> None:
    with pytest.raises(PathRefused) as refused:
        join_below("http://b.internal/secret-path?key=s3cr3t", "BAT-1/..%2Fx")
    assert "segment 2" in refused.value.message and "encoded '/'" in refused.value.message
    assert "secret-path" not in str(refused.value.problems) and "s3cr3t" not in str(refused.value.problems)
