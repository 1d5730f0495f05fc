"""Every replica must stem alike: PyStemmer (C, used when installed) and snowballstemmer's pure Python give the
same stem for every word of the labelled comments, in each of the five languages (both pinned to Snowball 3)."""

from __future__ import annotations

import importlib

import pytest
import Stemmer  # type: ignore[import-not-found]

from tests.themes.comments import HELD_OUT, WRITTEN
from worker.themes import tokenize
from worker.themes.text import SNOWBALL_NAMES


@pytest.mark.parametrize("language", ["en", "nl", "et", "de", "es"])
def test_the_c_and_the_pure_python_stemmers_agree(language: str) -> None:
    name = SNOWBALL_NAMES[language]
    pure = getattr(importlib.import_module(f"snowballstemmer.{name}_stemmer"), f"{name.capitalize()}Stemmer")()
    fast = Stemmer.Stemmer(name)
    words = sorted({word for text in WRITTEN[language] + HELD_OUT[language] for word in tokenize(text)})
    assert len(words) > 100
    assert [fast.stemWord(w) for w in words] == [pure.stemWord(w) for w in words]
