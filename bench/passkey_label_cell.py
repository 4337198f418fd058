"""How far the pass-key format study's ``+label=no`` cell is from a label-only edit (issue 20, item 7).

Builds the study's prompts (seed 5000, 100 per format) of the paragraph format ``passkey-filler``,
of ``passkey-filler+label=no`` and of the one-factor ``passkey-filler+label=drop`` at one length
(tokenizer only: no model, no decoding) and prints, per format: the prompt lengths in tokens, how
many haystacks end in a paragraph holding only the word "The" (refitting to the token length adds
one more word where the label's tokens were); and per variant: how many needles sit after a
different haystack text than in the paragraph prompt of the same index (the needle moved by at
least a sentence), and how many prompts are the paragraph prompt with only "Question: " left out
(``label=drop`` is built to be that on every prompt).

    python bench/passkey_label_cell.py 2048
"""

from __future__ import annotations

import sys
from collections import Counter

from headscope.models import load_tokenizer
from headscope.tasks import make_examples

FORMATS = ("passkey-filler", "passkey-filler+label=no", "passkey-filler+label=drop")
QUESTION = "What is the pass key?"


def main(length: int = 2048, n: int = 100, seed: int = 5000) -> None:
    tok = load_tokenizer("smollm2-135m")
    exs = {f: make_examples(f, tok, lengths=[length], n_examples=n, seed=seed) for f in FORMATS}
    before: dict[str, list[str]] = {}
    for fmt, examples in exs.items():
        lengths = Counter(len(ex.input_ids) for ex in examples)
        dangling = 0
        before[fmt] = []
        for ex in examples:
            text = tok.decode(list(ex.input_ids))
            hay = text.split(QUESTION)[0].rstrip()
            dangling += hay.endswith("\n\nThe") or hay.endswith("Question:") and \
                hay.removesuffix("Question:").rstrip().endswith("\n\nThe")
            (needle,) = ex.spans_of("needle")
            before[fmt].append(tok.decode(list(ex.input_ids[:needle.start])))
        print(f"{fmt} at {length}: {n} prompts; token lengths {dict(sorted(lengths.items()))}; "
              f"haystack ends in a paragraph of only 'The': {dangling}")
    paragraph = exs[FORMATS[0]]
    for fmt in FORMATS[1:]:
        moved = sum(a != b for a, b in zip(before[FORMATS[0]], before[fmt]))
        label_only = sum(tok.decode(list(b.input_ids)) == tok.decode(list(a.input_ids)).replace("Question: ", "", 1)
                         for a, b in zip(paragraph, exs[fmt]))
        print(f"{fmt}: needle after a different haystack text than the paragraph prompt of the same index: "
              f"{moved} of {n}; the paragraph prompt with only 'Question: ' left out: {label_only} of {n}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2048)
