"""How the catalog splits many names into searches: bounded pages, request lines a proxy accepts."""

from __future__ import annotations

from mlops_platform.serving import catalog


def test_searches_name_at_most_a_page_of_values_in_a_filter_a_request_line_can_carry():
    names = [f"model-{i:04d}" for i in range(250)] + ["x" * 900, "y" * 900, "z" * 900]
    chunks = list(catalog._chunks(names))
    assert [v for chunk in chunks for v in chunk] == names
    assert all(len(chunk) <= catalog.SEARCH_VALUES for chunk in chunks)
    assert all(sum(len(v) + 4 for v in chunk) <= catalog.SEARCH_FILTER_CHARS for chunk in chunks)
    assert [len(chunk) for chunk in chunks] == [100, 100, 51, 2]
    # A POST body carries any filter length: only the page bounds it.
    assert [len(chunk) for chunk in catalog._chunks(names, max_chars=None)] == [100, 100, 53]
