"""Text augmentation, EDA-style: random deletion, random swap and synonym replacement.

Applied to the *training* rows only (the caller's job; validation and test text is never touched).
Words are whitespace-separated; punctuation stuck to a word (``"good,"``) is kept around its synonym
and capitalisation of the first letter is carried over.  Everything is driven by one
``random.Random(seed)``, so the same texts, settings and seed give the same output.
Back-translation is out of scope.

:func:`augment_training_text` applies a recipe ``text`` step (``data.augment``) to the training
rows: ``copies`` augmented copies of every row are appended to the frame.
"""

from __future__ import annotations

import math
import random
import re
from typing import TYPE_CHECKING, Any

from honing.data.augment_steps import step_params
from honing.errors import RecipeError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SYNONYMS", "TEXT_STEP_DEFAULTS", "augment_training_text", "check_text_step", "rows_per_row",
           "text_augment", "text_steps"]

#: A small bundled synonym table (lowercase): common sentiment and general English words.
SYNONYMS: dict[str, list[str]] = {
    "good": ["fine", "nice", "decent"], "great": ["excellent", "superb", "terrific"],
    "bad": ["poor", "awful", "lousy"], "terrible": ["awful", "dreadful", "horrible"],
    "awful": ["terrible", "dreadful"], "excellent": ["superb", "outstanding", "great"],
    "amazing": ["astonishing", "incredible", "stunning"], "wonderful": ["marvellous", "lovely", "fantastic"],
    "horrible": ["dreadful", "terrible", "ghastly"], "nice": ["pleasant", "lovely", "good"],
    "happy": ["glad", "cheerful", "pleased"], "sad": ["unhappy", "gloomy", "sorrowful"],
    "angry": ["furious", "irate", "mad"], "love": ["adore", "cherish"], "hate": ["detest", "loathe", "despise"],
    "like": ["enjoy", "fancy"], "dislike": ["detest", "hate"], "boring": ["dull", "tedious", "tiresome"],
    "interesting": ["engaging", "intriguing", "fascinating"], "funny": ["amusing", "hilarious", "comical"],
    "beautiful": ["lovely", "gorgeous", "pretty"], "ugly": ["unsightly", "hideous"],
    "big": ["large", "huge", "sizable"], "small": ["little", "tiny", "compact"],
    "large": ["big", "huge"], "little": ["small", "tiny"], "fast": ["quick", "rapid", "speedy"],
    "slow": ["sluggish", "unhurried"], "quick": ["fast", "rapid", "swift"],
    "easy": ["simple", "effortless"], "hard": ["difficult", "tough"], "difficult": ["hard", "tough", "tricky"],
    "simple": ["easy", "plain", "basic"], "cheap": ["inexpensive", "affordable"],
    "expensive": ["costly", "pricey"], "old": ["aged", "elderly", "ancient"], "new": ["fresh", "recent", "novel"],
    "young": ["youthful", "juvenile"], "smart": ["clever", "bright", "intelligent"],
    "stupid": ["dumb", "foolish", "silly"], "clever": ["smart", "bright"], "strong": ["powerful", "sturdy"],
    "weak": ["feeble", "frail"], "rich": ["wealthy", "affluent"], "poor": ["bad", "inferior", "weak"],
    "clean": ["spotless", "tidy"], "dirty": ["filthy", "grimy"], "quiet": ["silent", "calm", "peaceful"],
    "loud": ["noisy", "deafening"], "calm": ["peaceful", "tranquil", "serene"],
    "scary": ["frightening", "creepy", "spooky"], "brave": ["courageous", "bold", "fearless"],
    "kind": ["caring", "gentle", "friendly"], "rude": ["impolite", "insolent"],
    "friendly": ["amiable", "cordial", "kind"], "helpful": ["useful", "supportive"],
    "useful": ["helpful", "handy", "practical"], "useless": ["worthless", "pointless"],
    "important": ["significant", "crucial", "essential"], "strange": ["odd", "weird", "peculiar"],
    "weird": ["odd", "strange", "bizarre"], "perfect": ["flawless", "ideal"],
    "fantastic": ["wonderful", "fabulous", "superb"], "disappointing": ["underwhelming", "unsatisfying"],
    "enjoyable": ["pleasant", "fun", "entertaining"], "pleasant": ["nice", "agreeable", "enjoyable"],
    "tired": ["weary", "exhausted", "sleepy"], "sick": ["ill", "unwell"], "movie": ["film", "picture"],
    "film": ["movie", "picture"], "story": ["tale", "narrative", "plot"], "book": ["novel", "volume"],
    "car": ["automobile", "vehicle"], "house": ["home", "residence"], "home": ["house", "residence"],
    "job": ["work", "occupation"], "friend": ["companion", "pal", "buddy"], "child": ["kid", "youngster"],
    "people": ["folks", "persons"], "problem": ["issue", "trouble", "difficulty"],
    "idea": ["notion", "concept", "thought"], "place": ["location", "spot", "site"],
    "food": ["meal", "cuisine", "fare"], "price": ["cost", "charge"], "start": ["begin", "commence"],
    "begin": ["start", "commence"], "end": ["finish", "conclude"], "finish": ["end", "complete"],
    "buy": ["purchase", "acquire"], "help": ["assist", "aid", "support"], "show": ["display", "present"],
    "make": ["create", "produce", "build"], "see": ["watch", "view", "observe"],
    "watch": ["see", "view"], "say": ["state", "tell", "mention"], "think": ["believe", "suppose", "reckon"],
    "try": ["attempt", "test"], "get": ["obtain", "receive", "acquire"], "give": ["offer", "provide", "hand"],
    "very": ["really", "extremely", "truly"], "really": ["truly", "very", "genuinely"],
    "often": ["frequently", "regularly"], "maybe": ["perhaps", "possibly"], "quickly": ["rapidly", "swiftly"],
    "slowly": ["gradually", "leisurely"], "always": ["constantly", "forever"], "totally": ["completely", "entirely"],
}

_EDGE = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)


def _check_rate(name: str, value: float) -> float:
    """``value`` as a float in [0, 1], or a RecipeError naming the setting."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise RecipeError(f"text augmentation {name}: expected a number, got {value!r}",
                          "use a probability between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise RecipeError(f"text augmentation {name} must be between 0 and 1, got {value}",
                          "it is a per-word probability (swap: the fraction of words swapped)")
    return value


def _replace_synonyms(words: list[str], rate: float, table: dict[str, list[str]],
                      rng: random.Random) -> list[str]:
    """Each word found in ``table`` (case-insensitive, edge punctuation ignored) is swapped with
    probability ``rate`` for one of its synonyms, keeping the punctuation and a leading capital."""
    out = []
    for word in words:
        lead, core, trail = _EDGE.match(word).groups()  # type: ignore[union-attr]
        choices = table.get(core.lower())
        if choices and rng.random() < rate:
            new = rng.choice(choices)
            if core[:1].isupper():
                new = new[:1].upper() + new[1:]
            word = lead + new + trail
        out.append(word)
    return out


def _swap(words: list[str], rate: float, rng: random.Random) -> list[str]:
    """``round(rate * len(words))`` swaps of two random positions (the multiset of words is kept)."""
    words = list(words)
    if len(words) < 2:
        return words
    for _ in range(round(rate * len(words))):
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
    return words


def _delete(words: list[str], rate: float, rng: random.Random) -> list[str]:
    """Each word dropped with probability ``rate``; never all of them (one random word survives)."""
    if not words or rate <= 0.0:
        return list(words)
    kept = [w for w in words if rng.random() >= rate]
    return kept if kept else [rng.choice(words)]


def text_augment(texts: list[str], *, deletion: float = 0.0, swap: float = 0.0, synonyms: float = 0.0,
                 seed: int = 0, synonym_table: dict[str, list[str]] | None = None) -> list[str]:
    """EDA-style augmented copies of ``texts`` (one output per input, same order).

    In order: synonym replacement (each word in ``synonym_table`` — default :data:`SYNONYMS` — is
    replaced with probability ``synonyms`` by one of its listed synonyms), random swap
    (``round(swap * n_words)`` swaps of two random words), random deletion (each word dropped with
    probability ``deletion``, never all: with ``deletion=1`` exactly one word is kept).  Words are
    re-joined with single spaces; empty texts and non-strings (missing values) come back unchanged.
    Deterministic for a given ``seed``.
    """
    deletion = _check_rate("deletion", deletion)
    swap = _check_rate("swap", swap)
    synonyms = _check_rate("synonyms", synonyms)
    table = {k.lower(): list(v) for k, v in (SYNONYMS if synonym_table is None else synonym_table).items()}
    rng = random.Random(seed)
    out = []
    for text in texts:
        if not isinstance(text, str) or not text.split():
            out.append(text)
            continue
        words = text.split()
        if synonyms > 0.0:
            words = _replace_synonyms(words, synonyms, table, rng)
        if swap > 0.0:
            words = _swap(words, swap, rng)
        words = _delete(words, deletion, rng)
        out.append(" ".join(words))
    return out


#: The recipe's ``text`` step: its parameters and their defaults (rates are per word; ``copies`` is
#: how many augmented copies of each training row are appended).
TEXT_STEP_DEFAULTS: dict[str, Any] = {"deletion": 0.1, "swap": 0.1, "synonyms": 0.1, "copies": 1}
MAX_COPIES = 100


def check_text_step(step: dict, where: str = "data.augment[i]") -> dict[str, Any]:
    """A recipe ``text`` step (``{name: text, deletion: …, swap: …, synonyms: …, copies: …}``) with
    its defaults filled in; RecipeError naming ``where.KEY`` on an unknown key or a bad value."""
    if not isinstance(step, dict) or step.get("name") != "text":
        raise RecipeError(f"{where}: expected a text step, got {step!r}",
                          "e.g. {name: text, deletion: 0.1, swap: 0.1, synonyms: 0.1, copies: 1}")
    params = step_params(where, "text", step, TEXT_STEP_DEFAULTS)
    for key in ("deletion", "swap", "synonyms"):
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise RecipeError(f"{where}.{key} must be a number between 0 and 1, got {value!r}",
                              "it is a per-word probability (swap: the fraction of words swapped)")
        params[key] = float(value)
    copies = params["copies"]
    if isinstance(copies, bool) or not isinstance(copies, int) or not 1 <= copies <= MAX_COPIES:
        raise RecipeError(f"{where}.copies must be a whole number from 1 to {MAX_COPIES}, got {copies!r}",
                          "it is how many augmented copies of each training row are added")
    return params


def text_steps(steps: list[dict], text_columns: list[str]) -> tuple[tuple[int, dict], ...]:
    """The recipe's ``text`` steps of ``data.augment`` with their index, checked (RecipeError naming
    ``data.augment[i].KEY``, or for text steps on data without a text column)."""
    found = tuple((i, step) for i, step in enumerate(steps) if isinstance(step, dict) and step.get("name") == "text")
    for i, step in found:
        check_text_step(step, f"data.augment[{i}]")
    if found and not text_columns:
        raise RecipeError("data.augment: a text step needs a text column, and this data has none",
                          "remove the step, or set data.types: {COLUMN: text}")
    return found


def rows_per_row(steps: tuple[tuple[int, dict], ...]) -> int:
    """How many training rows each row becomes after the ``text_steps``: itself and its copies (the
    steps apply one after the other, so the second also rewrites the first's copies)."""
    return math.prod(1 + check_text_step(step)["copies"] for _, step in steps)


def augment_training_text(frame: pd.DataFrame, text_columns: list[str], step: dict, seed: int,
                          *, index: int | None = None) -> pd.DataFrame:
    """``frame`` (the *training* rows) followed by ``copies`` augmented copies of every row.

    In each copy the ``text_columns`` are rewritten by :func:`text_augment` with the step's rates
    (every copy and column draws from its own seed, derived from ``seed``); the other columns (the
    target included) are copied unchanged.  The originals come first, then copy 1 of every row,
    copy 2, …; the result has a fresh ``RangeIndex``.  ``step`` is the recipe step
    (``{name: text, …}``); its mistakes raise RecipeError naming ``data.augment[index].KEY``.
    Deterministic for a seed.  Never apply it to validation or test rows.
    """
    import numpy as np
    import pandas as pd

    where = f"data.augment[{'i' if index is None else index}]"
    params = check_text_step(step, where)
    if not text_columns:
        raise RecipeError(f"{where}.name: a text step needs a text column, and the data has none",
                          "remove the step, or mark a column as text with data.types: {COLUMN: text}")
    missing = [c for c in text_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"text columns not in the frame: {missing}")
    copies = []
    for k in range(1, params["copies"] + 1):
        copy = frame.copy()
        for j, column in enumerate(text_columns):
            draw = int(np.random.SeedSequence([int(seed), k, j]).generate_state(1)[0])
            values = text_augment(frame[column].tolist(), deletion=params["deletion"], swap=params["swap"],
                                  synonyms=params["synonyms"], seed=draw)
            dtype = None if isinstance(frame[column].dtype, pd.CategoricalDtype) else frame[column].dtype
            copy[column] = pd.Series(values, index=frame.index, dtype=dtype)
        copies.append(copy)
    return pd.concat([frame, *copies], ignore_index=True)
