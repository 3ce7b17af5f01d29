"""Stop strings: end a sequence once its text contains one of the given strings.

Semantics (shared by every decoder, which receive a ``StopStrings`` as ``stop=``):

- The text of a sequence is ``tokenizer.decode(new_token_ids, skip_special_tokens=True,
  clean_up_tokenization_spaces=False)`` of its *new* tokens only (never the prompt), so a
  stop string in the prompt does not stop anything and a stop string may span several tokens.
- After each token a decoder appends to a sequence it asks ``hit(token_ids)`` with all of that
  sequence's new tokens. ``hit`` is True when the text contains a stop string in a part that
  the latest token completed: an occurrence that ends past the longest common prefix of the
  texts before and after that token. Decoders ask after every token, so a stop string is
  found at the very step whose token completes it, never later.
- A hit ends that sequence (row, beam, hypothesis) exactly like an end-of-sequence token: its
  ``token_ids`` end with, and include, the token that completed the stop string; no token
  after it is emitted; ``finish_reason`` is ``"stop"``. In beam searches a candidate that hits
  is a finished hypothesis scored like an eos candidate. When the same token is an eos id,
  eos wins (``"eos"``).
- The text the user sees is cut before the stop string: ``cut(text)`` returns the text before
  the earliest occurrence of any stop string (the engine applies it; ``token_ids`` are not cut).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class StopStrings:
    """The stop strings of one request, checked against decoded new tokens (see the module docstring)."""

    def __init__(self, tokenizer: Any, strings: Sequence[str]) -> None:
        strings = list(strings)
        for s in strings:
            if not isinstance(s, str) or not s:
                raise ValueError(f"stop strings must be non-empty strings, got {s!r}")
        self.tokenizer = tokenizer
        self.strings: list[str] = list(dict.fromkeys(strings))  # de-duplicated, in order

    def __repr__(self) -> str:
        return f"StopStrings({self.strings!r})"

    def text(self, token_ids: Sequence[int]) -> str:
        """The text of ``token_ids`` as the stop strings are matched against."""
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def hit(self, new_token_ids: Sequence[int]) -> bool:
        """Whether the latest of ``new_token_ids`` completed a stop string in their text."""
        if not self.strings or not new_token_ids:
            return False
        text = self.text(new_token_ids)
        if not any(s in text for s in self.strings):
            return False  # the common case: one decode
        before = self.text(new_token_ids[:-1])
        common = 0  # longest common prefix of the texts before and after the latest token
        limit = min(len(before), len(text))
        while common < limit and before[common] == text[common]:
            common += 1
        # An occurrence ending past ``common`` was completed by the latest token: it starts at or
        # after ``common - len(s) + 1``.
        return any(s in text[max(0, common - len(s) + 1) :] for s in self.strings)

    def find(self, text: str) -> int:
        """Index of the earliest occurrence of any stop string in ``text``; -1 if none."""
        found = [i for i in (text.find(s) for s in self.strings) if i >= 0]
        return min(found) if found else -1

    def cut(self, text: str) -> str:
        """``text`` before the earliest occurrence of any stop string (all of it if none)."""
        i = self.find(text)
        return text if i < 0 else text[:i]
