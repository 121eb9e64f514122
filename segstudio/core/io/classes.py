"""Class tables: the id, name and colour of every class a mask can hold.

A table is immutable (``with_color`` returns a new one) so that a document, a legend and a renderer can
share it without defensive copies. Ids are dense, ``0 .. C-1``; the ignore index (default 255) lies
outside that range and is never a class.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from os import PathLike
from typing import Any, Iterator, Sequence

import numpy as np

from segstudio.core.io._atomic import atomic_write_bytes
from segstudio.core.errors import ClassTableError
from segstudio.core.io.jsonfile import read_json, read_text

__all__ = [
    "ClassInfo",
    "ClassTable",
    "voc_colormap",
    "VOC_NAMES",
    "CITYSCAPES_LABEL_TO_TRAIN",
    "COCO_THING_NAMES",
    "COCO_CATEGORY_IDS",
    "COCO_CATEGORY_TO_CONTIGUOUS",
    "BUILTIN_TABLES",
    "LABELME_BACKGROUND",
    "LABELME_IGNORE",
    "builtin_class_table",
    "class_table_from_spec",
    "describe_table_mismatch",
]

LABELME_BACKGROUND = "_background_"
"""labelme's name for class 0 (in ``class_names.txt`` and its COCO export); read as ``background``."""
LABELME_IGNORE = "__ignore__"
"""labelme's "don't care" label (id -1): never a class, read as the ignore index."""

RGBA = tuple[int, int, int, int]


def voc_colormap(n: int = 256) -> np.ndarray:
    """The standard PASCAL VOC palette (bit-interleaved id -> RGB).

    Parameters
    ----------
    n : int
        Number of entries.

    Returns
    -------
    numpy.ndarray
        ``(n, 3)`` uint8; entry 0 is black, 1 is (128, 0, 0), 255 is (224, 224, 192).
    """
    ids = np.arange(n, dtype=np.int64)
    cmap = np.zeros((n, 3), dtype=np.int64)
    bits = ids.copy()
    # Each group of three id bits lands on the next-lower bit of R, G and B, starting at bit 7.
    for shift in range(7, -1, -1):
        for channel in range(3):
            cmap[:, channel] |= ((bits >> channel) & 1) << shift
        bits >>= 3
    return cmap.astype(np.uint8)


VOC_NAMES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

# (trainId name, colour, Cityscapes labelId) for the 19 evaluated classes, from cityscapesscripts'
# labels.py; every other labelId is ignored in training and evaluation.
_CITYSCAPES = (
    ("road", (128, 64, 128), 7),
    ("sidewalk", (244, 35, 232), 8),
    ("building", (70, 70, 70), 11),
    ("wall", (102, 102, 156), 12),
    ("fence", (190, 153, 153), 13),
    ("pole", (153, 153, 153), 17),
    ("traffic light", (250, 170, 30), 19),
    ("traffic sign", (220, 220, 0), 20),
    ("vegetation", (107, 142, 35), 21),
    ("terrain", (152, 251, 152), 22),
    ("sky", (70, 130, 180), 23),
    ("person", (220, 20, 60), 24),
    ("rider", (255, 0, 0), 25),
    ("car", (0, 0, 142), 26),
    ("truck", (0, 0, 70), 27),
    ("bus", (0, 60, 100), 28),
    ("train", (0, 80, 100), 31),
    ("motorcycle", (0, 0, 230), 32),
    ("bicycle", (119, 11, 32), 33),
)

CITYSCAPES_LABEL_TO_TRAIN = np.full(256, 255, dtype=np.uint8)
"""``(256,)`` uint8 lookup: Cityscapes labelId -> trainId (0..18); every other labelId -> 255."""
for _train_id, (_name, _rgb, _label_id) in enumerate(_CITYSCAPES):
    CITYSCAPES_LABEL_TO_TRAIN[_label_id] = _train_id
CITYSCAPES_LABEL_TO_TRAIN.flags.writeable = False

# COCO's 80 "thing" categories keep the ids of the original 91-id list, with 11 gaps; torchvision's
# detection models (Mask R-CNN ...) output those sparse ids, so we keep both the names and the ids.
_COCO = (
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"),
    (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"),
    (13, "stop sign"), (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"), (18, "dog"),
    (19, "horse"), (20, "sheep"), (21, "cow"), (22, "elephant"), (23, "bear"), (24, "zebra"),
    (25, "giraffe"), (27, "backpack"), (28, "umbrella"), (31, "handbag"), (32, "tie"),
    (33, "suitcase"), (34, "frisbee"), (35, "skis"), (36, "snowboard"), (37, "sports ball"),
    (38, "kite"), (39, "baseball bat"), (40, "baseball glove"), (41, "skateboard"),
    (42, "surfboard"), (43, "tennis racket"), (44, "bottle"), (46, "wine glass"), (47, "cup"),
    (48, "fork"), (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"),
    (54, "sandwich"), (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"),
    (59, "pizza"), (60, "donut"), (61, "cake"), (62, "chair"), (63, "couch"), (64, "potted plant"),
    (65, "bed"), (67, "dining table"), (70, "toilet"), (72, "tv"), (73, "laptop"), (74, "mouse"),
    (75, "remote"), (76, "keyboard"), (77, "cell phone"), (78, "microwave"), (79, "oven"),
    (80, "toaster"), (81, "sink"), (82, "refrigerator"), (84, "book"), (85, "clock"), (86, "vase"),
    (87, "scissors"), (88, "teddy bear"), (89, "hair drier"), (90, "toothbrush"),
)
COCO_THING_NAMES: tuple[str, ...] = tuple(name for _, name in _COCO)
COCO_CATEGORY_IDS: tuple[int, ...] = tuple(cat for cat, _ in _COCO)
"""The 80 sparse COCO category ids, in the order of ``ClassTable.coco_things()`` ids 1..80."""

COCO_CATEGORY_TO_CONTIGUOUS = np.full(256, 255, dtype=np.uint8)
"""``(256,)`` uint8 lookup: COCO category id (torchvision label) -> ``coco_things()`` id.

0 (background) -> 0, the 80 thing categories -> 1..80 in id order, the 11 unused ids and
everything else -> 255 (ignore). Apply as ``COCO_CATEGORY_TO_CONTIGUOUS[labels]``.
"""
COCO_CATEGORY_TO_CONTIGUOUS[0] = 0
for _contiguous, _cat in enumerate(COCO_CATEGORY_IDS, start=1):
    COCO_CATEGORY_TO_CONTIGUOUS[_cat] = _contiguous
COCO_CATEGORY_TO_CONTIGUOUS.flags.writeable = False


@dataclass(frozen=True)
class ClassInfo:
    """One class: its dense id, display name and RGBA colour (0-255 per channel)."""

    id: int
    name: str
    color: RGBA


class ClassTable:
    """An immutable, ordered set of classes with dense ids ``0 .. C-1`` and an ignore index.

    Parameters
    ----------
    classes : sequence of ClassInfo
        Any order; ids must be exactly ``0 .. len(classes)-1``.
    ignore_index : int
        Mask value meaning "not labelled / don't care". Must not be a class id.
    name : str
        Human name of the table ("VOC", "Cityscapes" ...).

    Raises
    ------
    ClassTableError
        Ids not dense, duplicate ids, colours out of range, or an ignore index inside the class range.
    """

    def __init__(self, classes: Sequence[ClassInfo], ignore_index: int = 255, name: str = ""):
        self._init(classes, ignore_index, name, path=None)

    def _init(self, classes, ignore_index, name, path) -> None:
        classes = sorted(classes, key=lambda c: c.id)
        if not classes:
            raise ClassTableError(path, "the class table holds no classes")
        ids = [c.id for c in classes]
        if ids != list(range(len(classes))):
            raise ClassTableError(path, f"class ids must be exactly 0..{len(classes) - 1}, got {ids}")
        checked = []
        for c in classes:
            if not isinstance(c.name, str) or not c.name.strip():
                raise ClassTableError(path, f"class {c.id} has an empty name")
            checked.append(ClassInfo(int(c.id), c.name, _check_rgba(c.color, path, c.id)))
        dupes = sorted(n for n, k in Counter(c.name for c in checked).items() if k > 1)
        if dupes:  # index_of(name) and COCO's match by name would pick one of them silently
            raise ClassTableError(path, f"duplicate class names: {', '.join(dupes)}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise ClassTableError(path, f"ignore_index must be an integer, got {ignore_index!r}")
        if 0 <= ignore_index < len(classes):
            raise ClassTableError(
                path, f"ignore_index {ignore_index} collides with class '{checked[ignore_index].name}'")
        self._classes = tuple(checked)
        self._ignore_index = int(ignore_index)
        self._name = str(name)

    # -- read-only views -------------------------------------------------------------------------
    @property
    def classes(self) -> list[ClassInfo]:
        """The classes in id order (a fresh list; the table itself never changes)."""
        return list(self._classes)

    @property
    def ignore_index(self) -> int:
        """The mask value meaning "ignore"."""
        return self._ignore_index

    @property
    def name(self) -> str:
        """The table's human name."""
        return self._name

    @property
    def num_classes(self) -> int:
        """Number of classes ``C`` (== max id + 1)."""
        return len(self._classes)

    @property
    def names(self) -> list[str]:
        """Class names in id order."""
        return [c.name for c in self._classes]

    @property
    def colors(self) -> np.ndarray:
        """``(C, 4)`` uint8 RGBA colours in id order."""
        return np.array([c.color for c in self._classes], dtype=np.uint8).reshape(-1, 4)

    def __len__(self) -> int:
        return len(self._classes)

    def __iter__(self) -> Iterator[ClassInfo]:
        return iter(self._classes)

    def __getitem__(self, class_id: int) -> ClassInfo:
        return self._classes[class_id]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassTable):
            return NotImplemented
        return (self._classes, self._ignore_index, self._name) == (
            other._classes, other._ignore_index, other._name)

    def __hash__(self) -> int:
        return hash((self._classes, self._ignore_index, self._name))

    def __repr__(self) -> str:
        return f"ClassTable({self._name!r}, {len(self)} classes, ignore_index={self._ignore_index})"

    def index_of(self, name: str) -> int:
        """Id of the class called ``name``.

        Raises
        ------
        KeyError
            No class has that name.
        """
        for c in self._classes:
            if c.name == name:
                return c.id
        raise KeyError(name)

    # -- rendering ---------------------------------------------------------------------------------
    def lut(self, size: int = 256, ignore_color: Sequence[int] = (0, 0, 0, 0)) -> np.ndarray:
        """RGBA lookup table for colouring a mask with ``lut[mask]``.

        Parameters
        ----------
        size : int
            Number of entries; 256 for uint8 masks, ``max id + 1`` (or 65536) for uint16 masks.
        ignore_color : sequence of 4 ints
            Colour of the ignore index, when it lies within ``size``.

        Returns
        -------
        numpy.ndarray
            ``(size, 4)`` uint8. Ids ``>= C`` other than the ignore index are fully transparent.
        """
        table = np.zeros((size, 4), dtype=np.uint8)
        n = min(size, len(self._classes))
        table[:n] = self.colors[:n]
        if 0 <= self._ignore_index < size:
            table[self._ignore_index] = _check_rgba(ignore_color, None, "ignore")
        return table

    def with_color(self, class_id: int, rgba: Sequence[int]) -> "ClassTable":
        """A copy of this table with class ``class_id`` recoloured (3 values mean opaque)."""
        if not 0 <= class_id < len(self._classes):
            raise IndexError(f"class id {class_id} not in 0..{len(self._classes) - 1}")
        classes = list(self._classes)
        old = classes[class_id]
        classes[class_id] = ClassInfo(old.id, old.name, _check_rgba(rgba, None, class_id))
        return ClassTable(classes, self._ignore_index, self._name)

    # -- JSON --------------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """A JSON-ready dict: ``{"name", "ignore_index", "classes": [{"id", "name", "color"}]}``."""
        return {
            "name": self._name,
            "ignore_index": self._ignore_index,
            "classes": [{"id": c.id, "name": c.name, "color": list(c.color)} for c in self._classes],
        }

    @classmethod
    def from_json(cls, d: Any, path: str | PathLike | None = None) -> "ClassTable":
        """Build a table from the dict ``to_json`` writes.

        Colours may be ``[r, g, b]``, ``[r, g, b, a]`` or ``"#rrggbb[aa]"``; a class without ``"id"``
        takes its position in the list. ``path`` only names the source in error messages.

        Raises
        ------
        ClassTableError
            Missing keys, wrong types, bad colours, non-dense ids.
        """
        if isinstance(d, list):
            d = {"classes": d}
        if not isinstance(d, dict) or not isinstance(d.get("classes"), list):
            raise ClassTableError(path, "expected an object with a 'classes' list")
        classes = []
        for pos, entry in enumerate(d["classes"]):
            if isinstance(entry, str):
                entry = {"name": entry}
            if not isinstance(entry, dict) or "name" not in entry:
                raise ClassTableError(path, f"class entry {pos} needs at least a 'name': {entry!r}")
            class_id = entry.get("id", pos)
            if isinstance(class_id, bool) or not isinstance(class_id, int):
                raise ClassTableError(path, f"class entry {pos} has a non-integer id {class_id!r}")
            if not isinstance(entry["name"], str):
                raise ClassTableError(path, f"class {class_id} has a non-string name {entry['name']!r}")
            color = entry.get("color")
            if color is None:
                color = tuple(int(v) for v in voc_colormap(256)[class_id % 256])
            classes.append(ClassInfo(class_id, entry["name"], _check_rgba(color, path, class_id)))
        table = cls.__new__(cls)
        table._init(classes, d.get("ignore_index", 255), d.get("name", ""), path)
        return table

    @classmethod
    def load(cls, path: str | PathLike) -> "ClassTable":
        """Read a JSON class table file.

        Raises
        ------
        ClassTableError
            Unreadable file, invalid JSON or invalid content; the message names the file.
        """
        return cls.from_json(read_json(path, ClassTableError, "cannot read class table"), path)

    def save(self, path: str | PathLike) -> None:
        """Write the table as pretty JSON, atomically."""
        text = json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"
        atomic_write_bytes(path, text.encode("utf-8"))

    @classmethod
    def from_names_txt(cls, path: str | PathLike, ignore_index: int = 255) -> "ClassTable":
        """Read a labelme / VOC ``class_names.txt``: one class name per line, in id order.

        ``__ignore__`` (labelme's id -1) is skipped, ``_background_`` becomes ``background``, blank
        lines are skipped, colours come from the VOC colour map.

        Raises
        ------
        ClassTableError
            Unreadable file, no names, or duplicate names.
        """
        lines = read_text(path, ClassTableError, "cannot read class names",
                          "class names are not UTF-8 text").splitlines()
        names = []
        for line in lines:
            name = line.strip()
            if not name or name == LABELME_IGNORE:
                continue
            names.append("background" if name == LABELME_BACKGROUND else name)
        if not names:
            raise ClassTableError(path, "no class names in the file")
        table = cls.__new__(cls)
        table._init(_with_voc_colors(names), ignore_index, os.path.basename(os.fspath(path)), path)
        return table

    # -- built-ins ---------------------------------------------------------------------------------
    @classmethod
    def voc(cls) -> "ClassTable":
        """PASCAL VOC 2012: 21 classes (background + 20) with the standard palette, ignore 255."""
        return cls(_with_voc_colors(VOC_NAMES), 255, "VOC")

    @classmethod
    def cityscapes(cls) -> "ClassTable":
        """Cityscapes: the 19 train ids with their official colours, ignore 255.

        Masks stored as labelIds must be remapped with ``CITYSCAPES_LABEL_TO_TRAIN`` first.
        """
        classes = [ClassInfo(i, name, (*rgb, 255)) for i, (name, rgb, _) in enumerate(_CITYSCAPES)]
        return cls(classes, 255, "Cityscapes")

    @classmethod
    def coco_things(cls) -> "ClassTable":
        """COCO: background (0) + the 80 thing classes (1..80), VOC-map colours, ignore 255.

        torchvision detection models label with the sparse 91-id COCO category ids; convert them
        with ``COCO_CATEGORY_TO_CONTIGUOUS[labels]`` (category ``COCO_CATEGORY_IDS[k-1]`` is id ``k``).
        """
        return cls(_with_voc_colors(("background",) + COCO_THING_NAMES), 255, "COCO things")

    @classmethod
    def generic(cls, num_classes: int) -> "ClassTable":
        """``num_classes`` classes named ``"class 0"`` ... with VOC-map colours.

        The ignore index is 255, or 65535 when 255 would be a class id.
        """
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        ignore = 255 if num_classes <= 255 else 65535
        return cls(_with_voc_colors([f"class {i}" for i in range(num_classes)]), ignore,
                   f"{num_classes} classes")


BUILTIN_TABLES = {
    "voc": ClassTable.voc,
    "cityscapes": ClassTable.cityscapes,
    "coco": ClassTable.coco_things,
}
"""Built-in class tables by the name ``--classes`` takes: PASCAL VOC (21), Cityscapes' 19 train ids,
COCO (background + the 80 thing classes, ids 1..80 as the COCO reader numbers an
``instances_*.json``'s categories in id order)."""


def builtin_class_table(name: str) -> ClassTable:
    """The built-in table called ``name`` (case-insensitive; see ``BUILTIN_TABLES``).

    Raises
    ------
    ClassTableError
        No built-in table has that name; the message lists them.
    """
    factory = BUILTIN_TABLES.get(name.strip().lower())
    if factory is None:
        raise ClassTableError(name, f"not a built-in class table (built-in: {', '.join(BUILTIN_TABLES)})")
    return factory()


def class_table_from_spec(spec: "ClassTable | str | PathLike") -> ClassTable:
    """A class table from what a user typed: a table file, else a built-in table's name.

    A spec naming an existing file is that file (``.json`` table, else a ``class_names.txt``
    list), so a file called ``voc`` in the working folder still reads as a file; otherwise a
    built-in name (``voc``, ``cityscapes``, ``coco``); otherwise an error naming both.

    Raises
    ------
    ClassTableError
        An unreadable file, or neither a file nor a built-in name.
    """
    if isinstance(spec, ClassTable):
        return spec
    text = os.fspath(spec)
    if os.path.exists(text):
        if text.lower().endswith(".json"):
            return ClassTable.load(text)
        return ClassTable.from_names_txt(text)
    if text.strip().lower() in BUILTIN_TABLES:
        return builtin_class_table(text)
    raise ClassTableError(text, "no such class table file, and not a built-in table "
                                f"(built-in: {', '.join(BUILTIN_TABLES)})")


def _is_generic(table: ClassTable) -> bool:
    """A table of placeholder names (``class 0`` ...): a model without a card knows only a count."""
    return all(name == f"class {i}" for i, name in enumerate(table.names))


def describe_table_mismatch(reference: ClassTable, other: ClassTable, reference_label: str = "ground truth",
                            other_label: str = "model") -> str | None:
    """One line saying how ``other``'s classes differ from ``reference``'s, or ``None`` when they agree.

    Sizes are always compared; names too (ignoring case and surrounding blanks) unless ``other``
    holds only placeholder names (``class 0`` ...), which say nothing. The line names both tables'
    sizes and the first class whose name differs.
    """
    sizes_differ = reference.num_classes != other.num_classes
    first = None
    if not _is_generic(other):
        for i, (a, b) in enumerate(zip(reference.names, other.names)):
            if a.strip().lower() != b.strip().lower():
                first = (i, a, b)
                break
    if not sizes_differ and first is None:
        return None

    def label(name: str, table: ClassTable) -> str:
        title = f" '{table.name}'" if table.name else ""
        return f"the {name}'s class table{title} has {table.num_classes} classes"

    line = f"{label(reference_label, reference)}, {label(other_label, other)}"
    if first is not None:
        i, a, b = first
        line += f"; first difference: class {i} is '{a}' vs '{b}'"
    elif sizes_differ:
        shorter, longer = sorted((reference, other), key=lambda t: t.num_classes)
        extra = longer.names[shorter.num_classes]
        line += f"; the first {shorter.num_classes} names agree, then '{extra}' has no counterpart"
    return line + "; metrics compare class ids, so they are likely meaningless"


def _with_voc_colors(names: Sequence[str]) -> list[ClassInfo]:
    # The VOC map repeats after 256 entries; beyond that ids wrap, which is only cosmetic.
    cmap = voc_colormap(256)
    return [ClassInfo(i, n, (*(int(v) for v in cmap[i % 256]), 255)) for i, n in enumerate(names)]


def _check_rgba(color: Any, path, class_id) -> RGBA:
    """Normalise a colour to an RGBA tuple of ints, raising ClassTableError if it is not one."""
    where = f"class {class_id}"
    if isinstance(color, str):
        text = color.strip().lstrip("#")
        if len(text) not in (6, 8):
            raise ClassTableError(path, f"{where}: colour {color!r} is not #rrggbb or #rrggbbaa")
        try:
            color = [int(text[i:i + 2], 16) for i in range(0, len(text), 2)]
        except ValueError:
            raise ClassTableError(path, f"{where}: colour {color!r} is not hexadecimal") from None
    try:
        values = [v for v in color]
    except TypeError:
        raise ClassTableError(path, f"{where}: colour {color!r} is not a list of 3 or 4 numbers") from None
    if len(values) not in (3, 4) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ClassTableError(path, f"{where}: colour {color!r} is not a list of 3 or 4 integers")
    if not all(0 <= v <= 255 for v in values):
        raise ClassTableError(path, f"{where}: colour {color!r} has a value outside 0..255")
    if len(values) == 3:
        values.append(255)
    return tuple(int(v) for v in values)  # type: ignore[return-value]
