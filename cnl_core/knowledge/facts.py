"""Facts with paraphrases, made by code: the offline stand-in for COUNTERFACT's same-meaning rewrites.

The paper's first half asks whether one fact, said in several ways, localizes to one place. That needs
facts the model knows, each with several prompts of the same meaning. The built-in set is written here
as common knowledge (short lists of capitals, opposites and languages; nothing copied from a dataset),
and every prompt is built from a template, so the paraphrases of a fact differ in wording only.

A prompt may carry few-shot demonstrations: the first `shots` pairs of a relation, written in the same
template, are kept out of the facts and put before the query. With them a 135M model answers in the
expected form (" Paris", not " a city"); without them (`shots=0`) prompts are plain cloze sentences as
Knowledge Neurons used. The subject's character span in the final prompt is kept for causal tracing.

Users bring their own facts as CSV (`read_facts_csv`): columns subject, relation, answer, templates
(templates separated by " | ", each holding "{subject}"; a row may leave them empty to reuse the
relation's templates from an earlier row).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from ..errors import DatasetError

SUBJECT = "{subject}"
MIN_TEMPLATES = 2  # fidelity compares paraphrases: a fact needs at least two
MAX_FACTS = 500  # an uploaded file stays a small study (every fact's every paraphrase is asked)
MAX_TEMPLATES = 12
MAX_RELATIONS = 20
MAX_CSV_BYTES = 2 * 2**20


@dataclass(frozen=True)
class Relation:
    """A relation: paraphrase templates (each holds "{subject}") and its (subject, answer) pairs."""

    name: str
    templates: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Fact:
    """One fact: its relation, subject and answer (the answer as the model should continue, leading space)."""

    relation: str
    subject: str
    answer: str

    @property
    def id(self) -> str:
        return f"{self.relation}/{self.subject}"


@dataclass(frozen=True)
class Paraphrase:
    """One prompt of a fact: the full text (demonstrations + query), its template and the subject's span."""

    fact_id: str
    template: int
    text: str
    answer: str
    subject_start: int  # character span of the subject in `text` (the query's, not a demonstration's)
    subject_end: int

    @property
    def id(self) -> str:
        return f"{self.fact_id}#{self.template}"


@dataclass(frozen=True)
class FactSet:
    """Relations made into facts and paraphrases; the first `shots` pairs of each relation demonstrate."""

    relations: tuple[Relation, ...]
    shots: int = 2
    name: str = "builtin"
    facts: tuple[Fact, ...] = field(init=False)

    def __post_init__(self):
        if not 0 <= self.shots <= 8:
            raise DatasetError("Few-shot demonstrations per prompt: give a whole number from 0 to 8.")
        facts = []
        for rel in self.relations:
            if len(rel.templates) < MIN_TEMPLATES:
                raise DatasetError(
                    f"Relation '{rel.name}' has {len(rel.templates)} template(s); fidelity needs "
                    f"at least {MIN_TEMPLATES} paraphrases of each fact."
                )
            if len(rel.pairs) <= self.shots:
                raise DatasetError(
                    f"Relation '{rel.name}' has {len(rel.pairs)} fact(s), all needed as "
                    f"{self.shots} demonstrations; add facts or lower the shots."
                )
            facts += [Fact(rel.name, s, _spaced(a)) for s, a in rel.pairs[self.shots :]]
        object.__setattr__(self, "facts", tuple(facts))

    def head(self, per_relation: int) -> FactSet:
        """The same set with at most `per_relation` facts of each relation (after its demonstrations)."""
        rels = tuple(Relation(r.name, r.templates, r.pairs[: self.shots + per_relation]) for r in self.relations)
        return FactSet(rels, self.shots, self.name)

    def relation(self, name: str) -> Relation:
        return next(r for r in self.relations if r.name == name)

    def fact(self, fact_id: str) -> Fact:
        return next(f for f in self.facts if f.id == fact_id)

    def paraphrases(self, fact: Fact) -> list[Paraphrase]:
        """Every template of the fact's relation as a prompt, each after the same demonstrations in its wording."""
        rel = self.relation(fact.relation)
        out = []
        for t, template in enumerate(rel.templates):
            context = "".join(f"{template.replace(SUBJECT, s)}{_spaced(a)}\n" for s, a in rel.pairs[: self.shots])
            head, tail = template.split(SUBJECT, 1)
            start = len(context) + len(head)
            text = context + head + fact.subject + tail.replace(SUBJECT, fact.subject)
            out.append(Paraphrase(fact.id, t, text, fact.answer, start, start + len(fact.subject)))
        return out

    def subset(self, fact_ids: list[str]) -> list[Fact]:
        wanted = set(fact_ids)
        return [f for f in self.facts if f.id in wanted]


def _spaced(answer: str) -> str:
    """An answer as a continuation: one leading space (" Paris"), as the model writes it after "is"."""
    return " " + answer.strip()


CAPITALS = Relation(
    "capital",
    (
        "The capital of {subject} is",
        "The capital city of {subject} is",
        "{subject}'s capital is",
        "The seat of government of {subject} is in",
        "Q: What is the capital of {subject}?\nA:",
        "In {subject}, the capital city is",
    ),
    (
        ("Japan", "Tokyo"),
        ("Italy", "Rome"),
        ("France", "Paris"),
        ("Germany", "Berlin"),
        ("Spain", "Madrid"),
        ("Russia", "Moscow"),
        ("China", "Beijing"),
        ("Egypt", "Cairo"),
        ("Greece", "Athens"),
        ("Portugal", "Lisbon"),
        ("Austria", "Vienna"),
        ("Poland", "Warsaw"),
        ("Ireland", "Dublin"),
        ("Norway", "Oslo"),
        ("Sweden", "Stockholm"),
        ("Finland", "Helsinki"),
        ("Denmark", "Copenhagen"),
        ("Hungary", "Budapest"),
        ("Thailand", "Bangkok"),
        ("Kenya", "Nairobi"),
        ("Peru", "Lima"),
        ("Cuba", "Havana"),
        ("Iran", "Tehran"),
        ("Iraq", "Baghdad"),
        ("Belgium", "Brussels"),
        ("Canada", "Ottawa"),
        ("Australia", "Canberra"),
        ("Turkey", "Ankara"),
        ("England", "London"),
        ("South Korea", "Seoul"),
    ),
)

OPPOSITES = Relation(
    "opposite",
    (
        "The opposite of {subject} is",
        "The antonym of {subject} is",
        "The word that means the opposite of {subject} is",
        "Q: What is the opposite of {subject}?\nA:",
        "The reverse of {subject} is",
        "A word meaning the opposite of {subject} is",
    ),
    (
        ("big", "small"),
        ("up", "down"),
        ("hot", "cold"),
        ("fast", "slow"),
        ("happy", "sad"),
        ("rich", "poor"),
        ("tall", "short"),
        ("early", "late"),
        ("wet", "dry"),
        ("strong", "weak"),
        ("full", "empty"),
        ("thick", "thin"),
        ("loud", "quiet"),
        ("clean", "dirty"),
        ("win", "lose"),
        ("left", "right"),
        ("push", "pull"),
        ("true", "false"),
        ("love", "hate"),
        ("day", "night"),
        ("black", "white"),
        ("good", "bad"),
        ("high", "low"),
        ("inside", "outside"),
        ("first", "last"),
        ("buy", "sell"),
        ("heavy", "light"),
        ("open", "closed"),
        ("light", "dark"),
        ("old", "young"),
    ),
)

LANGUAGES = Relation(
    "language",
    (
        "The official language of {subject} is",
        "In {subject}, most people speak",
        "The main language spoken in {subject} is",
        "Q: What language do people speak in {subject}?\nA:",
        "People who live in {subject} usually speak",
        "The language of {subject} is",
    ),
    (
        ("Japan", "Japanese"),
        ("Italy", "Italian"),
        ("France", "French"),
        ("Germany", "German"),
        ("Spain", "Spanish"),
        ("Russia", "Russian"),
        ("China", "Chinese"),
        ("Greece", "Greek"),
        ("Portugal", "Portuguese"),
        ("Poland", "Polish"),
        ("Sweden", "Swedish"),
        ("Turkey", "Turkish"),
        ("Netherlands", "Dutch"),
        ("Brazil", "Portuguese"),
        ("Mexico", "Spanish"),
        ("Egypt", "Arabic"),
        ("Iran", "Persian"),
        ("Korea", "Korean"),
        ("Thailand", "Thai"),
        ("Finland", "Finnish"),
        ("Norway", "Norwegian"),
        ("Denmark", "Danish"),
        ("Hungary", "Hungarian"),
        ("Israel", "Hebrew"),
        ("Vietnam", "Vietnamese"),
        ("England", "English"),
        ("Argentina", "Spanish"),
        ("Austria", "German"),
        ("Ukraine", "Ukrainian"),
        ("Czech Republic", "Czech"),
    ),
)

BUILTIN_RELATIONS = (CAPITALS, OPPOSITES, LANGUAGES)


def builtin_facts(shots: int = 2, relations: tuple[str, ...] | None = None) -> FactSet:
    """The built-in facts (capitals, opposites, languages: 28 facts each with 2 shots, 6 paraphrases each)."""
    chosen = tuple(r for r in BUILTIN_RELATIONS if relations is None or r.name in relations)
    if not chosen:
        raise DatasetError(
            f"No built-in relation among {relations}; known: " + ", ".join(r.name for r in BUILTIN_RELATIONS) + "."
        )
    return FactSet(chosen, shots)


def read_facts_csv(text: str, shots: int = 2, name: str = "upload") -> FactSet:
    """A user's facts: CSV with columns subject, relation, answer, templates (" | "-separated, with {subject})."""
    if len(text.encode("utf-8", "replace")) > MAX_CSV_BYTES:
        raise DatasetError(
            f"The facts file is over {MAX_CSV_BYTES // 2**20} MiB; a fact study needs a few hundred rows."
        )
    rows = list(csv.DictReader(io.StringIO(text)))
    need = {"subject", "relation", "answer"}
    if not rows or not need <= {(k or "").strip().lower() for k in rows[0]}:
        raise DatasetError("The facts file needs a header with the columns subject, relation, answer (and templates).")
    if len(rows) > MAX_FACTS:
        raise DatasetError(f"The facts file has {len(rows)} rows; at most {MAX_FACTS} are studied at once.")
    templates: dict[str, tuple[str, ...]] = {}
    pairs: dict[str, list[tuple[str, str]]] = {}
    for line, raw in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        subject, relation, answer = row["subject"], row["relation"], row["answer"]
        if not (subject and relation and answer):
            raise DatasetError(f"Row {line}: subject, relation and answer must all be filled in.")
        given = tuple(t.strip() for t in row.get("templates", "").split("|") if t.strip())
        for t in given:
            if t.count(SUBJECT) < 1:
                raise DatasetError(f"Row {line}: the template {t[:60]!r} has no {SUBJECT} to put the subject in.")
        if len(given) > MAX_TEMPLATES:
            raise DatasetError(f"Row {line}: {len(given)} templates; at most {MAX_TEMPLATES} per relation.")
        if given:
            templates[relation] = given
        elif relation not in templates:
            raise DatasetError(
                f"Row {line}: relation '{relation[:40]}' has no templates yet; give them in its first row."
            )
        pairs.setdefault(relation, []).append((subject, answer))
        if len(pairs) > MAX_RELATIONS:
            raise DatasetError(f"Row {line}: more than {MAX_RELATIONS} relations; a study compares a few.")
    return FactSet(tuple(Relation(r, templates[r], tuple(p)) for r, p in pairs.items()), shots, name)
