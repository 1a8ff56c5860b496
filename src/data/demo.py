"""The embedded demo data set: short texts of four topics, generated from word lists.

Deterministic (its own fixed seed, independent of --seed) and small enough that the whole
method runs on a laptop CPU in minutes. Every text's topic is decidable (its own topic's words
are the majority), but texts share filler words and half of those with several topic words
borrow one from another topic, so the classifier must learn word-topic associations, which
noisy labels corrupt.
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


def _make_texts(n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    names = list(TOPICS)
    labels = rng.integers(0, len(names), size=n)
    texts = []
    for label in labels:
        n_own = int(rng.integers(1, 4))
        own = rng.choice(TOPICS[names[label]], size=n_own, replace=False).tolist()
        words = own + rng.choice(FILLER, size=rng.integers(2, 6)).tolist()
        if n_own > 1 and rng.random() < 0.5:  # one word from another topic, never a majority
            other = names[(label + rng.integers(1, len(names))) % len(names)]
            words.append(str(rng.choice(TOPICS[other])))
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
