"""Rebuild WRENCH's ChemProt `train.json` from COSINE's ChemProt and WRENCH's valid/test.

    python scripts/rebuild_chemprot.py --cosine <COSINE chemprot folder> --wrench <WRENCH chemprot folder> OUT

Some copies of WRENCH's ChemProt lack `train.json` (it is the one large file). WRENCH built its
splits from COSINE's: COSINE's `train_data`, `unlabeled_data`, `dev_data` and `test_data`
concatenated in that order, the rows labelled 0 ('O') dropped, give WRENCH's ids 0, 1, ...;
WRENCH's label is COSINE's minus 1 and its text is COSINE's without the entity markers; train is
every id not in valid or test. The weak labels are the 26 keyword labelling functions listed in
WRENCH's `readme.txt` (LABELLING_FUNCTIONS, in its order).

Nothing is assumed: the same rebuild is applied to WRENCH's valid and test rows and must give
exactly their text, label, entities, spans and weak labels, or the script stops with an
`error:` line and writes nothing. OUT then holds train.json, valid.json, test.json and
label.json (the last three copied), a folder `--dataset chemprot --path OUT` reads.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

COSINE_FILES = ("train_data.json", "unlabeled_data.json", "dev_data.json", "test_data.json")
WRENCH_FILES = ("valid.json", "test.json", "label.json")

# (WRENCH label, keywords): a function votes its label when any keyword occurs in the lowercased
# text, else abstains (-1). Written from WRENCH's chemprot readme.txt, whose labels are 1-based.
LABELLING_FUNCTIONS: list[tuple[int, tuple[str, ...]]] = [
    (0, ("amino acid",)), (0, ("replace",)), (0, ("mutant", "mutat")),  # Part of
    (1, ("bind",)), (1, ("interact",)), (1, ("affinit",)),  # Regulator
    (2, ("activat",)), (2, ("increas",)), (2, ("induc",)), (2, ("stimulat",)), (2, ("upregulat",)),  # Upregulator
    (3, ("downregulat", "down-regulat")), (3, ("reduc",)), (3, ("inhibit",)), (3, ("decreas",)),  # Downregulator
    (4, (" agoni", "\tagoni")),  # Agonist
    (5, ("antagon",)),  # Antagonist
    (6, ("modulat",)), (6, ("allosteric",)),  # Modulator
    (7, ("cofactor",)),  # Cofactor
    (8, ("substrate",)), (8, ("transport",)), (8, ("catalyz", "catalys")),  # Substrate/Product
    (8, ("produc",)), (8, ("conver",)),
    (9, ("not",)),  # NOT
]

MARKER = re.compile(r"\[(\\?)(CHEMICAL|GENE)\]")


class RebuildError(Exception):
    """The inputs do not rebuild WRENCH's rows exactly; the message says where."""


def weak_labels(text: str) -> list[int]:
    """The 26 labelling functions' votes on one text (-1 = abstain)."""
    lower = text.lower()
    return [label if any(word in lower for word in words) else -1 for label, words in LABELLING_FUNCTIONS]


def unmark(marked: str) -> dict:
    """COSINE text with [CHEMICAL]..[\\CHEMICAL] and [GENE]..[\\GENE] -> WRENCH's `data`: the text
    without markers, entity1 (the gene), entity2 (the chemical) and their [start, end) spans."""
    text, spans, opened, last = [], {}, {}, 0
    length = 0
    for match in MARKER.finditer(marked):
        piece = marked[last:match.start()]
        text.append(piece)
        length += len(piece)
        closing, kind = match.group(1) == "\\", match.group(2)
        if closing:
            spans[kind] = [opened.pop(kind), length]
        else:
            opened[kind] = length
        last = match.end()
    text.append(marked[last:])
    plain = "".join(text)
    if set(spans) != {"CHEMICAL", "GENE"} or opened:
        raise RebuildError(f"a text lacks one [GENE] and one [CHEMICAL] pair: {marked[:80]!r}")
    gene, chemical = spans["GENE"], spans["CHEMICAL"]
    return {"text": plain, "entity1": plain[gene[0]:gene[1]], "entity2": plain[chemical[0]:chemical[1]],
            "span1": gene, "span2": chemical}


def read_json(path: Path):
    if not path.is_file():
        raise RebuildError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RebuildError(f"{path}:{exc.lineno}: malformed json ({exc.msg})") from None


def rebuild(cosine: Path, wrench: Path) -> dict[str, dict]:
    """WRENCH's ChemProt train records keyed by id, after checking the rebuild on valid and test."""
    rows = [row for name in COSINE_FILES for row in read_json(cosine / name)]
    rows = [row for row in rows if row["label"] != 0]  # 'O': not a WRENCH class
    records = {}
    for i, row in enumerate(rows):
        data = unmark(row["text"])
        records[str(i)] = {"label": row["label"] - 1, "data": data, "weak_labels": weak_labels(data["text"])}
    held_out = set()
    for name in ("valid.json", "test.json"):
        for key, given in read_json(wrench / name).items():
            built = records.get(key)
            if built is None:
                raise RebuildError(f"{wrench / name}: id {key} is not among the {len(rows)} rebuilt rows")
            for field, want, got in (("label", given["label"], built["label"]),
                                     ("weak_labels", given["weak_labels"], built["weak_labels"]),
                                     *((f"data.{k}", v, built["data"].get(k)) for k, v in given["data"].items())):
                if want != got:
                    raise RebuildError(f"{wrench / name}: id {key}: rebuilt {field} {got!r} differs from {want!r}")
            held_out.add(key)
    return {key: record for key, record in records.items() if key not in held_out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the folder to write (must not exist)")
    parser.add_argument("--cosine", type=Path, required=True, help="COSINE's chemprot folder (train_data.json, ...)")
    parser.add_argument("--wrench", type=Path, required=True,
                        help="WRENCH's chemprot folder (valid.json, test.json, label.json)")
    args = parser.parse_args(argv)
    if args.out.exists():
        print(f"error: {args.out} exists; name a new folder", file=sys.stderr)
        return 2
    try:
        for name in WRENCH_FILES:
            if not (args.wrench / name).is_file():
                raise RebuildError(f"{args.wrench / name}: file not found")
        train = rebuild(args.cosine, args.wrench)
    except RebuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Written beside OUT, then renamed: OUT is whole or absent.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=args.out.parent, prefix=f".{args.out.name}."))
    (staging / "train.json").write_text(json.dumps(train), encoding="utf-8")
    for name in WRENCH_FILES:
        shutil.copyfile(args.wrench / name, staging / name)
    staging.rename(args.out)
    covered = sum(any(v >= 0 for v in r["weak_labels"]) for r in train.values())
    print(f"wrote {args.out}: train.json with {len(train)} rows ({covered} with a vote), "
          f"valid and test rebuilt exactly and copied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
