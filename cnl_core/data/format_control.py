"""Answer content without the answer format: the same tasks with the leading space moved into the prompt.

SmolLM2's tokenizer writes " 7" as two tokens, a bare space and the digit, so on `add1` the first scored
position predicts the space: a format token that every sample shares. An independent check found 21 of
the 31 neurons the demo locates on `add1` selected by that position alone, and zeroing them drops
p(" ") from 0.99 to about 0.23, so the demo's accuracy drop mixes a broken answer format with broken
addition. In `add1_content` the prompt ends with "Answer: " and the gold answer is "7": the token ids of
prompt + answer are the very same (checked in tests/unit/test_format_control.py), but only the digits are
scored, and generation starts after the space, so accuracy measures the sum, not the format. Same for
`add2` and `successor`. Few-shot examples read the same text as before ("Answer: 7").
"""

from __future__ import annotations

from .samples import DatasetSpec, Sample, get_dataset, register_dataset

SUFFIX = "_content"


def content_only(samples: list[Sample], name: str) -> list[Sample]:
    """Each sample with its answer's leading whitespace moved to the end of its prompt, ids renamed."""
    out = []
    for s in samples:
        stripped = s.answer.lstrip()
        lead = s.answer[: len(s.answer) - len(stripped)]
        out.append(Sample(f"{name}/{s.id.split('/', 1)[-1]}", s.prompt + lead, stripped, s.target, s.choices))
    return out


def _register(base: str) -> None:
    spec = get_dataset(base)
    name = base + SUFFIX
    register_dataset(
        DatasetSpec(
            name,
            f"{spec.description}; scored on the answer's content only (the leading space is in the prompt)",
            spec.source,
            spec.kind,
            spec.prompt_format + " (answer's leading space moved into the prompt)",
            lambda: content_only(spec.rows(), name),
            expected_rows=spec.expected_rows,
            max_new_tokens=spec.max_new_tokens,
        )
    )


for _base in ("add1", "add2", "successor"):
    _register(_base)
