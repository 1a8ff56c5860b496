"""The embedded demo data set: short texts of four topics, generated from word lists.

Deterministic (its own fixed seed, independent of --seed) and small enough that the whole
method runs on a laptop CPU in minutes. Each text has one or two words of its topic among
shared filler words, so its topic is always decidable. Most topic words are invented jargon
(`JARGON`) that the pretrained model has never seen: their meaning can only be learnt from the
labels, a few examples each, which is where noisy labels do damage.
"""

from __future__ import annotations

import numpy as np

from src.data.base import Split, Splits

TOPICS = {
    "sports": ["match", "goal", "team", "coach", "league", "striker", "season", "referee", "tennis",
               "stadium", "player", "tournament", "score", "defender", "race", "medal"],
    "technology": ["software", "chip", "laptop", "server", "startup", "network", "robot", "update",
                   "battery", "browser", "database", "algorithm", "phone", "cloud", "code", "sensor"],
    "food": ["recipe", "kitchen", "chef", "bread", "soup", "dinner", "spice", "cheese", "bakery",
             "menu", "dessert", "restaurant", "garlic", "pasta", "flavour", "oven"],
    "weather": ["storm", "rain", "forecast", "wind", "snow", "cloudy", "thunder", "heatwave",
                "temperature", "flood", "drought", "sunshine", "frost", "humidity", "breeze", "fog"],
}
FILLER = ["the", "a", "new", "local", "big", "report", "today", "people", "city", "week", "said",
          "after", "news", "about", "many", "this", "morning", "again", "record", "crowd"]
SIZES = {"train": 480, "validation": 120, "test": 400}
DEMO_SEED = 20230806  # fixed: the demo texts never change
JARGON_PER_TOPIC = 24
JARGON_SHARE = 0.7  # chance that a topic word is jargon rather than a real word


def _invent_words(count: int, rng: np.random.Generator) -> list[str]:
    """Pronounceable made-up words ("tavok", "miresh"): unique, and not English."""
    onsets, vowels, codas = list("bdfgklmnprstvz"), list("aeiou"), ["", "k", "n", "r", "sh", "x", "l"]
    words: list[str] = []
    while len(words) < count:
        syllables = [rng.choice(onsets) + rng.choice(vowels) for _ in range(int(rng.integers(2, 4)))]
        word = "".join(syllables) + rng.choice(codas)
        if word not in words:
            words.append(word)
    return words


_all_jargon = _invent_words(JARGON_PER_TOPIC * len(TOPICS), np.random.default_rng(DEMO_SEED + 1))
JARGON = {topic: _all_jargon[k * JARGON_PER_TOPIC : (k + 1) * JARGON_PER_TOPIC] for k, topic in enumerate(TOPICS)}


def vocabulary() -> list[str]:
    """Every word a demo text can contain."""
    return FILLER + [w for topic in TOPICS for w in TOPICS[topic] + JARGON[topic]]


def _make_texts(n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    names = list(TOPICS)
    labels = rng.integers(0, len(names), size=n)
    texts = []
    for label in labels:
        topic = names[label]
        own = [str(rng.choice(JARGON[topic] if rng.random() < JARGON_SHARE else TOPICS[topic]))
               for _ in range(int(rng.integers(1, 3)))]
        words = own + rng.choice(FILLER, size=rng.integers(2, 6)).tolist()
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, labels.astype(np.int64)


def load_demo(path: str | None = None, seed: int = 0) -> Splits:
    rng = np.random.default_rng(DEMO_SEED)
    parts = {}
    for split, n in SIZES.items():
        texts, gold = _make_texts(n, rng)
        parts[split] = Split(texts=texts, noisy=None, gold=gold)
    return Splits("demo", list(TOPICS), parts["train"], parts["validation"], parts["test"])
