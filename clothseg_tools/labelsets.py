"""Human-parsing label sets: which index of a parsing map is which part, and its classes.

A human-parsing model (SCHP, SegFormer, the FASHN parser...) writes one integer per
pixel; the *label set* says which name each integer stands for, in index order, and
which of the service's twelve classes (:data:`~clothseg_tools.classes.CLASSES`) each
name lands in. The registry holds the common sets with their exact published order:

====================  ====  ==========================================================
set                   size  published in
====================  ====  ==========================================================
atr                   18    SCHP ``simple_extractor.py`` (``dataset_settings['atr']``),
                            GoGoDuck912/Self-Correction-Human-Parsing; the same names
                            are the ``id2label`` of the segformer_b2_clothes model
ootd                  19    ``atr`` plus 18 ``Neck``: OOTDiffusion
                            ``preprocess/humanparsing/parsing_api.py``
                            (levihsu/OOTDiffusion) writes 18 where the ATR parser says
                            face and the LIP parser does not
lip                   20    SCHP ``simple_extractor.py`` (``dataset_settings['lip']``)
cihp                  20    as ``lip`` with 10 ``Torso-skin`` instead of ``Jumpsuits``:
                            CIHP_PGN (Engineering-Course/CIHP_PGN), README and issue 19
pascal_person_part    7     SCHP ``simple_extractor.py`` (``dataset_settings['pascal']``)
fashn                 18    ``fashn_human_parser/labels.py`` and the README's label
                            table of the ``fashn-human-parser`` package
====================  ====  ==========================================================

How labels land in classes follows the class hierarchy the engines keep: a garment
label is in its own class *and* in ``clothes`` (``Coat`` is tops, ``Jumpsuits`` is
dress); face and hair are also ``head``; bare skin (arms, legs, hands, feet, neck,
torso skin) is ``body``; glasses, gloves, socks, belts and jewellery are ``acc``; the
background is in no class.

Two judgement calls, made the way the rest of the toolkit already draws the classes:

- **Hat** is ``acc`` only, not ``head``. Every engine here defines ``head`` as exactly
  face plus hair (the local engine builds it that way), so ``head`` from a parsing map
  means the same pixels as ``head`` from the service or the local engine, and
  statistics and IoU between engines compare like with like. A hat is an object worn
  on the head, which is what ``acc`` holds.
- **Scarf** is ``acc`` only, not ``tops``/``clothes``. ``clothes`` is the sum of tops,
  bottoms and dress everywhere in the toolkit; a scarf is none of the three, and a
  try-on mask for a top that swallowed the scarf would repaint it (CatVTON protects it
  as an accessory for the same reason). Whoever wants the FASHN try-on rule (scarf as
  upper-body clothing) registers a set with that mapping.

Pascal-Person-Part labels body parts with whatever clothes cover them, so it gives
``head`` (not split into face and hair) and ``body`` only.

Names are compared case-, ``-``-, ``_``- and space-insensitively (``Upper-clothes``,
``upper_clothes`` and ``UpperClothes`` are one name), so a model's own ``id2label`` is
matched to its set by :func:`match_labelset` with no flag.

Examples
--------
>>> from clothseg_tools.labelsets import get_labelset
>>> atr = get_labelset("atr")
>>> len(atr), atr.labels[4], atr.classes["Upper-clothes"]
(18, 'Upper-clothes', ('clothes', 'tops'))
>>> atr.index("upper clothes")
4
>>> get_labelset("ootd").labels[18]
'Neck'
"""

from __future__ import annotations

import difflib
import json
import os
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .classes import CLASSES
from .errors import LabelSetError, LabelSetMatchError

__all__ = [
    "LABELSETS",
    "LabelSet",
    "get_labelset",
    "guess_classes",
    "load_labelset",
    "make_labelset",
    "match_labelset",
    "normalize_label",
    "register_labelset",
    "index_palette",
]


def normalize_label(name: str) -> str:
    """A label name folded for comparison: lower case, without ``-``, ``_`` or spaces.

    Examples
    --------
    >>> normalize_label("Upper-clothes") == normalize_label("upper_clothes") == "upperclothes"
    True
    """
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


@dataclass(frozen=True, eq=True)
class LabelSet:
    """The names of a parsing map's values, in index order, and the classes they land in.

    Parameters
    ----------
    name
        Registry name (``"atr"``, ``"lip"``...).
    labels
        Label names; ``labels[i]`` is the part a pixel of value ``i`` shows.
    classes
        Each label name -> the service classes it lands in, hierarchy included (a
        garment in its class and ``clothes``); ``()`` for the background. Every label
        must have an entry.

    Raises
    ------
    LabelSetError
        An empty or duplicated name, a label without an entry in ``classes`` (or an
        entry for a name that is not a label), or a class outside ``CLASSES``.

    Examples
    --------
    >>> ls = LabelSet("mine", ("bg", "shirt"), {"bg": (), "shirt": ("tops", "clothes")})
    >>> bool(ls.class_table()[1, CLASSES.index("tops")])
    True
    """

    name: str
    labels: tuple[str, ...]
    classes: Mapping[str, tuple[str, ...]] = field(compare=False)

    def __post_init__(self) -> None:
        labels = tuple(self.labels)
        if not self.name or not isinstance(self.name, str):
            raise LabelSetError(f"A label set needs a non-empty name, got {self.name!r}.")
        if not labels:
            raise LabelSetError(f"Label set {self.name!r} has no labels; give them in index order.")
        keys = [normalize_label(n) if isinstance(n, str) else "" for n in labels]
        if "" in keys:
            raise LabelSetError(
                f"Label set {self.name!r}: label {keys.index('')} is {labels[keys.index('')]!r}; "
                "every label needs a non-empty name."
            )
        twice = sorted({labels[i] for i, k in enumerate(keys) if keys.count(k) > 1})
        if twice:
            raise LabelSetError(
                f"Label set {self.name!r} names {twice} more than once (names are compared "
                "ignoring case, '-', '_' and spaces); give each index its own name."
            )
        given = dict(self.classes)
        missing = [n for n in labels if n not in given]
        extra = [n for n in given if n not in labels]
        if missing or extra:
            raise LabelSetError(
                f"Label set {self.name!r}: classes must have one entry per label; "
                f"missing {missing}, not labels {extra}."
            )
        mapped: dict[str, tuple[str, ...]] = {}
        for label in labels:
            value = given[label]
            targets = (value,) if isinstance(value, str) else tuple(value)
            unknown = [c for c in targets if c not in CLASSES]
            if unknown:
                raise LabelSetError(
                    f"Label set {self.name!r}: label {label!r} maps to {unknown}, which are "
                    f"not classes; use some of {', '.join(CLASSES)} (or () for none)."
                )
            mapped[label] = tuple(c for c in CLASSES if c in targets)  # CLASSES order
        # frozen: assign through object.__setattr__, once, in __post_init__
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "classes", types.MappingProxyType(mapped))

    def __hash__(self) -> int:
        return hash((self.name, self.labels))

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"LabelSet({self.name!r}, {len(self.labels)} labels)"

    @cached_property
    def _index(self) -> dict[str, int]:
        return {normalize_label(n): i for i, n in enumerate(self.labels)}

    def index(self, name: str) -> int:
        """The value of label ``name`` (case, ``-``, ``_`` and space insensitive).

        Raises
        ------
        LabelSetError
            ``name`` is not a label of this set (the message lists the labels).

        Examples
        --------
        >>> get_labelset("lip").index("LEFT_ARM")
        14
        """
        try:
            return self._index[normalize_label(name)]
        except KeyError:
            close = difflib.get_close_matches(
                normalize_label(name), list(self._index), n=1, cutoff=0.6
            )
            hint = f" Did you mean {self.labels[self._index[close[0]]]!r}?" if close else ""
            raise LabelSetError(
                f"{name!r} is not a label of the {self.name!r} set; its labels are "
                f"{', '.join(self.labels)}.{hint}"
            ) from None

    def class_table(self) -> npt.NDArray[np.bool_]:
        """An (n_labels, 12) read-only bool array: ``[i, j]`` is label ``i`` in ``CLASSES[j]``.

        One matrix product or look-up with it maps a whole parsing map (or its
        probabilities) to all classes at once.

        Examples
        --------
        >>> t = get_labelset("atr").class_table()
        >>> t.shape, [CLASSES[j] for j in t[11].nonzero()[0]]
        ((18, 12), ['face', 'head'])
        """
        return self._table

    @cached_property
    def _table(self) -> npt.NDArray[np.bool_]:
        table = np.zeros((len(self.labels), len(CLASSES)), dtype=bool)
        for i, label in enumerate(self.labels):
            for cls in self.classes[label]:
                table[i, CLASSES.index(cls)] = True
        table.flags.writeable = False
        return table

    def to_json(self) -> dict[str, Any]:
        """The set as the JSON object :func:`load_labelset` reads.

        Examples
        --------
        >>> get_labelset("pascal_person_part").to_json()["labels"][:2]
        ['Background', 'Head']
        """
        return {
            "name": self.name,
            "labels": list(self.labels),
            "classes": {n: list(c) for n, c in self.classes.items()},
        }


# -- the published sets -------------------------------------------------------------------

_HEAD_FACE = ("face", "head")
_HEAD_HAIR = ("hair", "head")
_TOPS = ("tops", "clothes")
_BOTTOMS = ("bottoms", "clothes")
_DRESS = ("dress", "clothes")
_ACC = ("acc",)
_BODY = ("body",)
_SHOES = ("shoes",)
_BAG = ("bag",)

_ATR: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Background", ()),
    ("Hat", _ACC),
    ("Hair", _HEAD_HAIR),
    ("Sunglasses", _ACC),
    ("Upper-clothes", _TOPS),
    ("Skirt", _BOTTOMS),
    ("Pants", _BOTTOMS),
    ("Dress", _DRESS),
    ("Belt", _ACC),
    ("Left-shoe", _SHOES),
    ("Right-shoe", _SHOES),
    ("Face", _HEAD_FACE),
    ("Left-leg", _BODY),
    ("Right-leg", _BODY),
    ("Left-arm", _BODY),
    ("Right-arm", _BODY),
    ("Bag", _BAG),
    ("Scarf", _ACC),
)

_LIP: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Background", ()),
    ("Hat", _ACC),
    ("Hair", _HEAD_HAIR),
    ("Glove", _ACC),
    ("Sunglasses", _ACC),
    ("Upper-clothes", _TOPS),
    ("Dress", _DRESS),
    ("Coat", _TOPS),
    ("Socks", _ACC),
    ("Pants", _BOTTOMS),
    ("Jumpsuits", _DRESS),
    ("Scarf", _ACC),
    ("Skirt", _BOTTOMS),
    ("Face", _HEAD_FACE),
    ("Left-arm", _BODY),
    ("Right-arm", _BODY),
    ("Left-leg", _BODY),
    ("Right-leg", _BODY),
    ("Left-shoe", _SHOES),
    ("Right-shoe", _SHOES),
)

_CIHP = tuple(("Torso-skin", _BODY) if i == 10 else item for i, item in enumerate(_LIP))

_PASCAL: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Background", ()),
    ("Head", ("head",)),
    ("Torso", _BODY),
    ("Upper Arms", _BODY),
    ("Lower Arms", _BODY),
    ("Upper Legs", _BODY),
    ("Lower Legs", _BODY),
)

_FASHN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("background", ()),
    ("face", _HEAD_FACE),
    ("hair", _HEAD_HAIR),
    ("top", _TOPS),
    ("dress", _DRESS),
    ("skirt", _BOTTOMS),
    ("pants", _BOTTOMS),
    ("belt", _ACC),
    ("bag", _BAG),
    ("hat", _ACC),
    ("scarf", _ACC),
    ("glasses", _ACC),
    ("arms", _BODY),
    ("hands", _BODY),
    ("legs", _BODY),
    # FASHN has no shoe label: its "feet" are the feet with whatever covers them, so
    # shoes from a FASHN map are empty and feet count as body
    ("feet", _BODY),
    ("torso", _BODY),
    ("jewelry", _ACC),
)


def _published(name: str, table: Sequence[tuple[str, tuple[str, ...]]]) -> LabelSet:
    return LabelSet(name, tuple(n for n, _ in table), dict(table))


_REGISTRY: dict[str, LabelSet] = {
    s.name: s
    for s in (
        _published("atr", _ATR),
        _published("ootd", (*_ATR, ("Neck", _BODY))),
        _published("lip", _LIP),
        _published("cihp", _CIHP),
        _published("pascal_person_part", _PASCAL),
        _published("fashn", _FASHN),
    )
}
_BUILTIN = frozenset(_REGISTRY)
# other spellings of the registry names that users type
_NAME_ALIASES = {"pascal": "pascal_person_part", "pascalpersonpart": "pascal_person_part"}

LABELSETS: Mapping[str, LabelSet] = types.MappingProxyType(_REGISTRY)
"""Every registered label set by name: a read-only view that shows sets added later with
:func:`register_labelset`."""


# -- guessing classes from names -----------------------------------------------------------

# whole names (normalised) first, then single words; side and segment words are ignored
_WHOLE_NAMES: dict[str, tuple[str, ...]] = {
    "background": (),
    "bg": (),
    "upperclothes": _TOPS,
    "upperbody": _TOPS,
    "lowerbody": _BOTTOMS,
    "torsoskin": _BODY,
    "sunglasses": _ACC,
    "eyeglasses": _ACC,
    "facemask": _ACC,
}
_WORDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(["background", "bg", "void", "none", "unlabeled", "unlabelled"], ()),
    "face": _HEAD_FACE,
    "hair": _HEAD_HAIR,
    "head": ("head",),
    **dict.fromkeys(
        ["top", "shirt", "tshirt", "blouse", "coat", "jacket", "sweater", "hoodie", "vest",
         "outerwear", "upperclothes", "cardigan"],
        _TOPS,
    ),
    **dict.fromkeys(
        ["pants", "pant", "trousers", "skirt", "shorts", "jeans", "leggings", "bottom",
         "bottoms"],
        _BOTTOMS,
    ),
    **dict.fromkeys(["dress", "jumpsuit", "jumpsuits", "romper", "overall", "overalls"], _DRESS),
    **dict.fromkeys(["shoe", "shoes", "boot", "boots", "sneaker", "sneakers", "footwear"], _SHOES),
    **dict.fromkeys(["bag", "bags", "handbag", "backpack", "purse"], _BAG),
    **dict.fromkeys(
        ["hat", "cap", "glove", "gloves", "sock", "socks", "belt", "scarf", "glasses",
         "sunglasses", "jewelry", "jewellery", "necklace", "earring", "earrings", "tie",
         "watch", "bracelet", "accessory", "accessories", "acc"],
        _ACC,
    ),
    **dict.fromkeys(
        ["arm", "arms", "leg", "legs", "hand", "hands", "foot", "feet", "neck", "torso",
         "skin", "body"],
        _BODY,
    ),
}
_IGNORED_WORDS = frozenset({"left", "right", "upper", "lower", "l", "r"})


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))  # camelCase -> camel Case
    return [w for w in re.split(r"[\s_\-./]+", spaced.lower()) if w]


def guess_classes(name: str) -> tuple[str, ...] | None:
    """The classes a label called ``name`` most likely lands in, or ``None`` if unsure.

    Whole names are looked up first (``Upper-clothes``, ``Torso-skin``), then each word
    with side words (left, right, upper, lower) ignored; words that disagree give
    ``None``.

    Examples
    --------
    >>> guess_classes("Left-shoe"), guess_classes("UpperClothes"), guess_classes("Upper Arms")
    (('shoes',), ('clothes', 'tops'), ('body',))
    >>> guess_classes("cape") is None
    True
    """
    whole = normalize_label(name)
    if whole in _WHOLE_NAMES:
        found: tuple[str, ...] | None = _WHOLE_NAMES[whole]
    else:
        guesses = {_WORDS[w] for w in _words(name) if w not in _IGNORED_WORDS and w in _WORDS}
        found = guesses.pop() if len(guesses) == 1 else None
    return None if found is None else tuple(c for c in CLASSES if c in found)


def make_labelset(
    name: str,
    labels: Iterable[str],
    classes: Mapping[str, Iterable[str] | str] | None = None,
) -> LabelSet:
    """Build a :class:`LabelSet`, guessing the classes from the names where not given.

    Parameters
    ----------
    name
        The set's name.
    labels
        Label names in index order.
    classes
        Label -> class name(s). Labels missing here are guessed from their names
        (:func:`guess_classes`).

    Raises
    ------
    LabelSetError
        A label whose classes cannot be guessed (the message lists them and shows the
        mapping to pass), or a malformed set.

    Examples
    --------
    >>> make_labelset("tiny", ["bg", "shirt", "cape"], {"cape": "acc"}).classes["shirt"]
    ('clothes', 'tops')
    """
    names = [str(n) for n in labels]
    given = {str(k): ((v,) if isinstance(v, str) else tuple(v)) for k, v in (classes or {}).items()}
    by_key = {normalize_label(k): v for k, v in given.items()}
    mapped: dict[str, tuple[str, ...]] = {}
    unsure: list[str] = []
    for label in names:
        guess = by_key.get(normalize_label(label))
        if guess is None:
            guess = guess_classes(label)
        if guess is None:
            unsure.append(label)
        else:
            mapped[label] = guess
    if unsure:
        example = ", ".join(f'"{n}": ["acc"]' for n in unsure[:3])
        raise LabelSetError(
            f"Cannot tell which classes the label(s) {unsure} of set {name!r} belong to. "
            f"Give them in classes=, e.g. {{{example}}} (classes: {', '.join(CLASSES)}; "
            "[] for none)."
        )
    unknown = [k for k in given if normalize_label(k) not in {normalize_label(n) for n in names}]
    if unknown:
        raise LabelSetError(
            f"classes= names {unknown}, which are not labels of set {name!r} ({names})."
        )
    return LabelSet(name, tuple(names), mapped)


def register_labelset(
    name: str,
    labels: Iterable[str] | LabelSet,
    classes: Mapping[str, Iterable[str] | str] | None = None,
    *,
    replace: bool = False,
) -> LabelSet:
    """Add a label set to the registry (and :data:`LABELSETS`) and return it.

    Parameters
    ----------
    name
        The name to register it under.
    labels
        Label names in index order, or a ready :class:`LabelSet`.
    classes
        Label -> class name(s); labels left out are guessed from their names.
    replace
        Allow replacing a set registered earlier under ``name`` (never a built-in one).

    Raises
    ------
    LabelSetError
        The name is taken, or a label's classes cannot be guessed.

    Examples
    --------
    >>> ls = register_labelset("doc-example", ["background", "top", "pants"], replace=True)
    >>> ls.classes["pants"], "doc-example" in LABELSETS
    (('clothes', 'bottoms'), True)
    """
    if name in _BUILTIN:
        raise LabelSetError(
            f"{name!r} is a built-in label set and cannot be replaced; register yours under "
            "another name."
        )
    if name in _REGISTRY and not replace:
        raise LabelSetError(
            f"A label set named {name!r} is already registered; pass replace=True to replace it."
        )
    if isinstance(labels, LabelSet):
        labelset = LabelSet(name, labels.labels, labels.classes)
    else:
        labelset = make_labelset(name, labels, classes)
    _REGISTRY[name] = labelset
    return labelset


def _names_from(obj: Mapping[Any, Any] | Sequence[Any]) -> list[str]:
    """Names in index order from an ``id2label`` dict (int or str keys) or a list."""
    if isinstance(obj, Mapping):
        try:
            pairs = sorted((int(k), str(v)) for k, v in obj.items())
        except (TypeError, ValueError):
            raise LabelSetError(
                f"id2label keys must be label indices (0, 1, ... or '0', '1', ...), "
                f"got {list(obj)[:5]}."
            ) from None
        indices = [i for i, _ in pairs]
        if indices != list(range(len(pairs))):
            raise LabelSetError(
                f"id2label must number its labels 0..{len(pairs) - 1} without gaps, "
                f"got indices {indices}."
            )
        return [n for _, n in pairs]
    if isinstance(obj, str):
        raise LabelSetError("Give label names as a list or an id2label dict, not one string.")
    return [str(n) for n in obj]


def load_labelset(path: str | os.PathLike[str], *, name: str | None = None) -> LabelSet:
    """Read a label set from a JSON file.

    The file holds ``{"name": ..., "labels": [...], "classes": {label: [class, ...]}}``
    (``name`` defaults to the file's stem, ``classes`` entries left out are guessed),
    or a model ``config.json`` with ``id2label``.

    Raises
    ------
    LabelSetError
        The file does not exist, is not JSON, or holds no labels.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "shop.json"
    >>> spec = {"labels": ["bg", "shirt", "cape"], "classes": {"cape": ["acc"]}}
    >>> _ = p.write_text(json.dumps(spec))
    >>> load_labelset(p)
    LabelSet('shop', 3 labels)
    """
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabelSetError(f"Label set file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelSetError(f"Label set file {path} is not readable JSON: {exc}.") from None
    if not isinstance(obj, Mapping) or not ("labels" in obj or "id2label" in obj):
        raise LabelSetError(
            f"Label set file {path} must hold an object with 'labels' (names in index "
            "order) and optionally 'classes', or a model config with 'id2label'."
        )
    names = _names_from(obj.get("labels", obj.get("id2label")))
    classes = obj.get("classes") or None
    if classes is not None and not isinstance(classes, Mapping):
        raise LabelSetError(f"'classes' in {path} must map label names to lists of classes.")
    return make_labelset(name or str(obj.get("name") or path.stem), names, classes)


def get_labelset(name_or_set: str | os.PathLike[str] | LabelSet) -> LabelSet:
    """The label set called ``name_or_set``, read from a ``.json`` path, or the set itself.

    Raises
    ------
    LabelSetError
        No set has that name (the message lists the registered ones).

    Examples
    --------
    >>> get_labelset("Pascal").name
    'pascal_person_part'
    """
    if isinstance(name_or_set, LabelSet):
        return name_or_set
    text = os.fspath(name_or_set)
    if text in _REGISTRY:
        return _REGISTRY[text]
    key = normalize_label(text)
    for registered, labelset in _REGISTRY.items():
        if normalize_label(registered) == key:
            return labelset
    if key in _NAME_ALIASES:
        return _REGISTRY[_NAME_ALIASES[key]]
    if text.lower().endswith(".json"):
        return load_labelset(text)
    raise LabelSetError(
        f"Unknown label set {text!r}; use one of {', '.join(_REGISTRY)}, a .json file "
        "(see load_labelset), or register yours with register_labelset(name, labels)."
    )


def match_labelset(id2label: Mapping[Any, Any] | Sequence[Any]) -> LabelSet:
    """The registered set whose names, in order, are a model's ``id2label`` names.

    Parameters
    ----------
    id2label
        A model config's ``id2label`` (``{"0": "Background", ...}``) or a list of names.

    Raises
    ------
    LabelSetMatchError
        No set matches; the message and ``.closest`` name the nearest sets and the
        first index where each differs.

    Examples
    --------
    >>> match_labelset({"0": "background", "1": "face", "2": "hair", "3": "top", "4": "dress",
    ...                 "5": "skirt", "6": "pants", "7": "belt", "8": "bag", "9": "hat",
    ...                 "10": "scarf", "11": "glasses", "12": "arms", "13": "hands",
    ...                 "14": "legs", "15": "feet", "16": "torso", "17": "jewelry"}).name
    'fashn'
    """
    names = _names_from(id2label)
    keys = [normalize_label(n) for n in names]
    for labelset in _REGISTRY.values():
        if [normalize_label(n) for n in labelset.labels] == keys:
            return labelset
    scored = []
    for labelset in _REGISTRY.values():
        theirs = [normalize_label(n) for n in labelset.labels]
        pairs = list(zip(keys, theirs, strict=False))  # the shorter length: sizes may differ
        same = sum(a == b for a, b in pairs)
        first = next((i for i, (a, b) in enumerate(pairs) if a != b), len(pairs))
        scored.append((same / max(len(keys), len(theirs)), first, labelset))
    scored.sort(key=lambda t: -t[0])
    closest = tuple(s[2] for s in scored[:3])
    details = "; ".join(
        f"{ls.name} ({len(ls)} labels, first differs at index {first}: "
        f"{names[first] if first < len(names) else '-'!r} vs "
        f"{ls.labels[first] if first < len(ls) else '-'!r})"
        for _, first, ls in scored[:3]
    )
    raise LabelSetMatchError(
        f"The {len(names)} label names {names[:6]}{'...' if len(names) > 6 else ''} match no "
        f"known label set. Closest: {details}. Pass the set by name (labels=/--labels), or "
        "register yours with register_labelset(name, labels, classes).",
        closest=closest,
    )


def index_palette(n: int) -> list[int]:
    """The flat RGB palette of ``n`` entries SCHP and Pascal VOC colour index PNGs with.

    Examples
    --------
    >>> index_palette(3)
    [0, 0, 0, 128, 0, 0, 0, 128, 0]
    """
    palette = []
    for j in range(n):
        rgb = [0, 0, 0]
        lab, bit = j, 0
        while lab:  # bit-interleaved colours, the VOC colour map
            for c in range(3):
                rgb[c] |= ((lab >> c) & 1) << (7 - bit)
            bit += 1
            lab >>= 3
        palette += rgb
    return palette
