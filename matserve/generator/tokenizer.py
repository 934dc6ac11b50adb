"""CrystaLLM's CIF tokenizer: text <-> the token ids of `vocab.TOKENS`.

Rules (CrystaLLM's, so published checkpoints read our ids as they read theirs):
runs of spaces and tabs collapse to one space; at each position the longest vocabulary
token wins, so numbers come out one digit per token; what no token covers becomes
`<unk>`, a whole word (``\\w+``) at a time or else one character. A space-group symbol
right after `_symmetry_space_group_name_H-M ` is one token (`Fm-3m_sg`), decoded
without the suffix. There are no BOS/EOS/PAD tokens: a CIF ends at a blank line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from matserve.generator.vocab import SPACE_GROUP_SUFFIX, SPACE_GROUPS, TOKENS, UNK

SPACE_GROUP_TAG = "_symmetry_space_group_name_H-M"

_SPACES = re.compile(r"[ \t]+")


def normalize(text: str) -> str:
    """The text the tokenizer actually sees: Unix newlines, single spaces."""
    return _SPACES.sub(" ", text.replace("\r\n", "\n"))


def _pattern() -> re.Pattern[str]:
    def alternatives(words: Sequence[str]) -> str:
        return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))

    plain = [t for t in TOKENS if t != UNK and not t.endswith(SPACE_GROUP_SUFFIX)]
    # Tried in order at each position: a space group where one may stand, then the longest
    # plain token, then an unknown word, then any single unknown character.
    space_group = rf"(?<={re.escape(SPACE_GROUP_TAG)} )(?P<sg>{alternatives(SPACE_GROUPS)})(?= ?(?:\n|$))"
    return re.compile(rf"{space_group}|(?P<token>{alternatives(plain)})|\w+|.", re.DOTALL)


class Tokenizer:
    """Encodes CIF text to CrystaLLM token ids and back."""

    def __init__(self) -> None:
        self.tokens = TOKENS
        self.ids = {token: i for i, token in enumerate(TOKENS)}
        self.unk_id = self.ids[UNK]
        self.newline_id = self.ids["\n"]
        self._texts = [t.removesuffix(SPACE_GROUP_SUFFIX) if t.endswith(SPACE_GROUP_SUFFIX) else t for t in TOKENS]
        self._pattern = _pattern()

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def tokenize(self, text: str) -> list[str]:
        """Token strings (space groups with their `_sg` suffix, unknowns as `<unk>`)."""
        out = []
        for match in self._pattern.finditer(normalize(text)):
            if match["sg"] is not None:
                out.append(match["sg"] + SPACE_GROUP_SUFFIX)
            elif match["token"] is not None:
                out.append(match["token"])
            else:
                out.append(UNK)
        return out

    def encode(self, text: str) -> list[int]:
        return [self.ids[token] for token in self.tokenize(text)]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self._texts[i] for i in ids)
