"""format_json: the one reader of the JSON files we are given (artifact descriptors, data annotations)."""

from __future__ import annotations

import pytest

from siamrn_jax.data.source import DataError
from siamrn_jax.format_json import read_format_json, read_json


class Bad(Exception):
    pass


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff\xfe not text", "x.json: corrupt JSON ('utf-8' codec can't decode"),
        (b'{"format": ', "x.json: corrupt JSON (Expecting value: line 1 column 12"),
        (b"[1, 2]", "x.json: unknown format None (expected 'f/1')"),
        (b'{"format": "f/2"}', "x.json: unknown format 'f/2' (expected 'f/1')"),
    ],
)
def test_bad_descriptors_name_the_file_and_the_problem(tmp_path, content, message):
    (tmp_path / "x.json").write_bytes(content)
    with pytest.raises(Bad) as e:
        read_format_json(tmp_path / "x.json", "f/1", Bad, "no descriptor")
    assert str(e.value).startswith(f"{tmp_path}/{message}")


def test_missing_descriptor_and_a_good_one(tmp_path):
    with pytest.raises(Bad, match="^no descriptor$"):
        read_format_json(tmp_path / "x.json", "f/1", Bad, "no descriptor")
    (tmp_path / "x.json").write_text('{"format": "f/1", "a": [1]}')
    assert read_format_json(tmp_path / "x.json", "f/1", Bad, "no descriptor") == {"format": "f/1", "a": [1]}


def test_data_annotation_that_is_not_text_is_a_data_error(tmp_path):
    from siamrn_jax.data.pysot import read_pysot_json

    (tmp_path / "train.json").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(DataError, match="train.json: corrupt JSON"):
        read_pysot_json(tmp_path / "train.json")
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "nope.json", Bad)
