"""Captioned images for text-to-image models: attribute-rendered images with templated captions.

Axis legend: n images, c channels (3, RGB), h w spatial, A binary attributes, L caption length.

The images are those of the ``attributes`` dataset (stroke thickness x ink colour domains); each
gets a caption filled in from a template with its class and attributes, e.g. "a thick red ankle
boot". Normal thickness is not mentioned ("a red sneaker"). Captions are whitespace-separated
lower-case words, stored as token ids into ``info["vocabulary"]`` (id 0 is ``<pad>``), right-padded
with 0 to L, the longest caption any template can produce (the same for both splits).

``hold_out`` removes class-attribute combinations from the training split only (zero-shot
composition tests): the test split keeps them and flags them in its ``held_out`` field.
"""
from __future__ import annotations

import string
from typing import Sequence

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from lvmgraph import DatasetBundle

from .attributes import AttributesParams, attribute_info, attribute_splits
from .common import DIGIT_NAMES, SPLIT_IDS
from .derived import BASES, SPLITS, finish_images, normalize_name, resolve_class

PAD = "<pad>"
PLACEHOLDERS = {"a", "thickness", "colour", "class"}
DEFAULT_TEMPLATES = ["{a} {thickness} {colour} {class}"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
#: class names that read badly in a sentence -> the words captions use for them
CAPTION_WORDS = {"T-shirt/top": "t-shirt", **dict(zip(DIGIT_NAMES, NUMBER_WORDS))}
#: numpy stream id of the hold_out_fraction draw (the splits use 0 and 1); the same for both splits
HOLD_OUT_STREAM = 2


class CaptionsParams(AttributesParams):
    templates: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TEMPLATES),
        description="caption templates with the placeholders {a} (a/an, agreeing with the next word), "
                    "{thickness}, {colour}, {class}; each image uses one at random")
    hold_out: list[tuple[str | int, str]] = Field(
        default_factory=list,
        description="[class, attribute] combinations kept out of the training split (the test split keeps "
                    "them), e.g. [[ankle boot, red], [sneaker, thick]]; the attribute is a thickness level "
                    "or a colour")
    hold_out_fraction: float = Field(
        default=0.0, ge=0, lt=1,
        description="also hold out this share of the class-colour combinations, drawn with the seed "
                    "(every class keeps at least one colour)")

    @field_validator("templates")
    @classmethod
    def _known_placeholders(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("templates needs at least one template, e.g. '{a} {thickness} {colour} {class}'")
        for template in value:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            unknown = fields - PLACEHOLDERS
            if unknown:
                raise ValueError(f"template '{template}' uses unknown placeholders {sorted(unknown)}; "
                                 f"known: {{a}}, {{thickness}}, {{colour}}, {{class}}")
            if "class" not in fields:
                raise ValueError(f"template '{template}' does not mention {{class}}")
        return value

    @model_validator(mode="after")
    def _held_out_combinations_exist(self):
        held_out_pairs(self)
        return self


def class_word(name: str) -> str:
    """A class name -> the (possibly multi-word) phrase captions use for it."""
    return CAPTION_WORDS.get(name, name).lower()


def fill(template: str, *, class_name: str, thickness: str, colour: str) -> list[str]:
    """One caption as words: placeholders filled, "normal" thickness dropped, {a} made a/an."""
    text = template.format(a="\0", thickness="" if thickness == "normal" else thickness, colour=colour,
                           **{"class": class_word(class_name)})
    words = text.lower().split()
    for i, word in enumerate(words):
        if word == "\0":
            following = words[i + 1] if i + 1 < len(words) else ""
            words[i] = "an" if following[:1] in tuple("aeiou") else "a"
    return words


def held_out_pairs(p: CaptionsParams) -> list[tuple[int, str]]:
    """The held-out (class index, attribute) combinations: ``hold_out`` then the drawn fraction."""
    names = BASES[p.base].class_names
    attributes = list(p.thickness) + list(p.colours)
    pairs = []
    for i, (cls, attribute) in enumerate(p.hold_out):
        index = resolve_class(cls, names, setting=f"hold_out[{i}]", base=p.base)
        wanted = normalize_name(attribute)
        if wanted not in attributes:
            from lvmgraph.plugins.registry import did_you_mean
            match = did_you_mean(wanted, attributes)
            hint = f"did you mean '{match}'? " if match else ""
            raise ValueError(f"hold_out[{i}]: unknown attribute '{attribute}': {hint}"
                             f"(attributes: {', '.join(attributes)})")
        pairs.append((index, wanted))
    if p.hold_out_fraction > 0:
        rng = np.random.default_rng(np.random.SeedSequence([p.seed, HOLD_OUT_STREAM]))
        combos = [(c, colour) for c in range(len(names)) for colour in p.colours]
        target, drawn = int(round(p.hold_out_fraction * len(combos))), 0
        for k in rng.permutation(len(combos)):
            if drawn >= target:
                break
            c, colour = combos[k]
            colours_left = [x for x in p.colours if (c, x) not in pairs]
            if colour in colours_left and len(colours_left) > 1:  # every class keeps a colour
                pairs.append((c, colour))
                drawn += 1
    return pairs


def vocabulary_for(p: CaptionsParams) -> tuple[list[str], int]:
    """-> (vocabulary with <pad> at 0 then every word any caption can use, sorted; the longest caption)."""
    words, longest = set(), 0
    for name in BASES[p.base].class_names:
        for thickness in p.thickness:
            for colour in p.colours:
                for template in p.templates:
                    caption = fill(template, class_name=name, thickness=thickness, colour=colour)
                    words.update(caption)
                    longest = max(longest, len(caption))
    return [PAD, *sorted(words)], longest


def encode_caption(text: str, vocabulary: Sequence[str], *, length: int | None = None) -> torch.Tensor:
    """A caption -> token ids (len,) int64, or (length,) right-padded with 0 when ``length`` is given.

    Words are split on whitespace and lower-cased. An unknown word raises ValueError naming it,
    with the closest known word.
    """
    index = {word: i for i, word in enumerate(vocabulary)}
    ids = []
    for word in text.lower().split():
        if word not in index or word == PAD:
            from lvmgraph.plugins.registry import did_you_mean
            match = did_you_mean(word, [w for w in vocabulary if w != PAD])
            hint = f"did you mean '{match}'? " if match else ""
            raise ValueError(f"unknown word '{word}' in caption '{text}': {hint}"
                             f"(vocabulary: {', '.join(w for w in vocabulary if w != PAD)})")
        ids.append(index[word])
    if not ids:
        raise ValueError("the caption is empty; write e.g. 'a thick red sneaker'")
    if length is not None:
        if len(ids) > length:
            raise ValueError(f"caption '{text}' has {len(ids)} words but captions hold at most {length}")
        ids += [0] * (length - len(ids))
    return torch.tensor(ids, dtype=torch.int64)


def decode_caption(ids: torch.Tensor | Sequence[int], vocabulary: Sequence[str]) -> str:
    """Token ids (L,) -> the caption, padding (id 0) dropped."""
    return " ".join(vocabulary[int(i)] for i in ids if int(i) != 0)


class CaptionEncoder:
    """``--given text="a thick red sneaker"`` -> one example's ``text`` (L,) and ``text_length`` ()."""

    def __init__(self, vocabulary: Sequence[str], length: int):
        self.vocabulary, self.length = list(vocabulary), int(length)

    def __call__(self, text: str) -> dict[str, torch.Tensor]:
        ids = encode_caption(text, self.vocabulary, length=self.length)
        return {"text": ids, "text_length": torch.tensor(int((ids != 0).sum()), dtype=torch.int64)}


def load_captions(**settings) -> DatasetBundle:
    """Attribute-rendered images with captions: x (n 3 h w), y, attributes (n A), text (n L), text_length (n,).

    Images, ``y``, ``domain`` and ``attributes`` are those of the ``attributes`` dataset
    (thickness x colour domains). ``text`` holds each caption's token ids into
    ``info["vocabulary"]`` (0 = <pad>), right-padded; e.g. "a thick red ankle boot" from the
    template "{a} {thickness} {colour} {class}" (``templates``). ``hold_out: [[ankle boot, red]]``
    (or ``hold_out_fraction``) drops those class-attribute combinations from the training split;
    the test split keeps them and marks them in ``held_out`` (n,) bool (all false in train).
    ``encode_caption(text, info["vocabulary"], length=L)`` turns a new caption into ids; the
    bundle's ``encoders["text"]`` does it for ``lvmgraph sample --given text="..."`` (both fields).
    """
    p = CaptionsParams.model_validate(settings)
    made = attribute_splits(p)
    vocabulary, length = vocabulary_for(p)
    index = {word: i for i, word in enumerate(vocabulary)}
    names = BASES[p.base].class_names
    pairs = made.table.pairs
    held = held_out_pairs(p)
    out = {}
    for split in SPLITS:
        fields = made.splits[split]
        n = len(fields["y"])
        # a stream of its own, so templates never shift the domain draw
        rng = np.random.default_rng(np.random.SeedSequence([p.seed, SPLIT_IDS[split], 1]))
        choice = rng.integers(len(p.templates), size=n)
        text = torch.zeros(n, length, dtype=torch.int64)
        text_length = torch.zeros(n, dtype=torch.int64)
        held_out = torch.zeros(n, dtype=torch.bool)
        for i, (y, d, t) in enumerate(zip(fields["y"].tolist(), fields["domain"].tolist(), choice.tolist())):
            thickness, colour = pairs[d]
            words = fill(p.templates[t], class_name=names[y], thickness=thickness, colour=colour)
            text[i, :len(words)] = torch.tensor([index[w] for w in words])
            text_length[i] = len(words)
            held_out[i] = (y, thickness) in held or (y, colour) in held
        fields = {**fields, "text": text, "text_length": text_length, "held_out": held_out}
        if split == "train":
            keep = ~held_out
            fields = {k: v[keep] for k, v in fields.items()}
        fields["x"] = finish_images(fields["x"], p)
        out[split] = fields
    info = attribute_info(made, p, name="captions", shape=out["train"]["x"].shape[1:],
                          vocabulary=vocabulary, captions=list(p.templates), max_caption_length=length,
                          held_out=[[names[c], a] for c, a in held])
    return DatasetBundle(train=out["train"], test=out["test"], info=info,
                         encoders={"text": CaptionEncoder(vocabulary, length)})
