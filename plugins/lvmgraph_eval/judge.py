"""``judge_accuracy``: how often generated images are classified as what they should be, by a judge
trained on the run's own real data.

Axis legend: b batch, n examples, K classes, A attributes; images (b c h w) in the data's format.

Where the dataset evaluator cannot answer (it knows one labelling of the dataset in its default
form), a judge (``lvmgraph.eval.judge``) is trained on the spec's data itself: on two domains'
images (x_a = class 0, x_b = class 1: "is x_ab in domain B?"), on images against a class field
("is x_ab still a sneaker?"), or against multi-hot attributes ("does x_fake have the attributes
c_trg asks for?"). The score is the classification accuracy of translation and conditional GAN
papers (CycleGAN's and StarGAN's classifier scores), read against the judge's accuracy on real
test images (``reference``), its ceiling.
"""
from __future__ import annotations

from typing import Any, Literal, Union

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from lvmgraph import Params
from lvmgraph.eval.context import point_value
from lvmgraph.eval.judge import judge_data, judge_fields, judge_for, score
from lvmgraph.eval.stats import confusion_matrix, rng_from


class JudgeParams(Params):
    images: Union[str, list[str]] = Field(
        description="image field(s) of the data the judge learns from: one field with `labels`, or several "
                    "fields, each one class (label = position in the list), e.g. [x_a, x_b]")
    labels: Union[str, list[str], None] = Field(
        None, description="label field(s), one per image field: class indices, one-hot rows, or multi-hot rows "
                          "(multi-label judge, a sigmoid per attribute); null: classes are the positions in `images`")
    epochs: int | None = Field(None, gt=0, description="training epochs (default: about 300 steps, at least 3)")
    seed: int = Field(0, ge=0, description="seed of the judge's initialisation and data order")
    colour: Literal["keep", "value"] = Field(
        "keep", description="keep: the judge reads the images' colours; value: only their HSV value (the "
                            "brightest channel), blind to hue: for questions colour does not answer (the class "
                            "of a garment inked red or green), so a colour never seen with a class is no obstacle")
    data: dict[str, Any] | None = Field(
        None, description="dataset settings changed for the judge's own copy of the data (the run's data "
                          "is unchanged), e.g. {hold_out: []}: a judge of held-out combinations must have "
                          "seen them, or it misreads real held-out images too")

    @model_validator(mode="after")
    def _fits(self):
        judge_fields(self.images, self.labels)
        return self


class JudgeAccuracyParams(Params):
    output: str = Field(description="graph value computed from each data batch: images in the data's shape and "
                                    "value range (a translation x_ab, StarGAN's x_fake, a generation from text)")
    judge: JudgeParams = Field(description="what the judge is trained on: {images: [x_a, x_b]} or "
                                           "{images: x, labels: y}")
    target: Union[int, str, list[float]] = Field(
        description="what each output should be classified as: a class index (e.g. 1 = the second image field), "
                    "a data field or graph value of class indices / one-hot / multi-hot rows (e.g. c_trg), or a "
                    "constant multi-hot row [0, 1, 1, 0]")
    input: str | None = Field(None, description="data field the output is computed from (e.g. x_b for x_ba); when "
                                                "it is an image field, input_accuracy reports how often the "
                                                "untranslated inputs are already judged as the target")
    where: str | None = Field(None, description="boolean data field: only the examples where it is true "
                                                "(e.g. captions' held_out)")
    split: Literal["train", "test"] = Field("test", description="data split the outputs are computed from")
    n: int = Field(1000, gt=0, description="number of examples judged (fewer if the split is smaller)")
    batch_size: int = Field(500, gt=0, description="data rows per forward pass")
    seed: int | None = Field(None, ge=0, description="seed of the graph's random draws (e.g. sampled targets); "
                                                     "default: drawn from the evaluation seed")


def _target_rows(s: JudgeAccuracyParams, batch: dict, values: dict, size: int) -> torch.Tensor:
    """The target of each example: (b,) int64 class indices or (b A) float rows, on the CPU."""
    if isinstance(s.target, bool):
        raise ValueError("target: give a class index, a field / value name or a multi-hot row, not true/false")
    if isinstance(s.target, int):
        return torch.full((size,), s.target, dtype=torch.int64)
    if isinstance(s.target, list):
        return torch.tensor(s.target, dtype=torch.float32).expand(size, -1)
    t = batch[s.target] if s.target in batch else values[s.target]
    t = point_value(t, s.target, "target").detach().cpu()
    if t.dim() == 0:
        t = t.expand(size)
    return t


def _as_classes(t: torch.Tensor, k: int, name) -> torch.Tensor:
    if t.dim() == 2:
        if t.shape[1] != k:
            raise ValueError(f"target {name!r} has rows of width {t.shape[1]} but the judge knows {k} classes")
        t = t.argmax(dim=1)
    t = t.reshape(-1).long()
    if ((t < 0) | (t >= k)).any():
        raise ValueError(f"target {name!r} holds classes outside 0..{k - 1} (the judge's classes)")
    return t


def _as_attributes(t: torch.Tensor, a: int, name) -> torch.Tensor:
    if t.dim() != 2 or t.shape[1] != a:
        raise ValueError(f"target {name!r} has shape {tuple(t.shape)}; the multi-label judge needs (b, {a}) "
                         f"multi-hot rows")
    return t > 0.5


def judge_accuracy(ctx, **settings) -> dict:
    """Generated images -> the fraction a judge trained on the run's real data classifies as the target.

    The judge (a small CNN, cached; see ``lvmgraph.eval.judge``) is trained on the train split of
    ``judge.images`` against ``judge.labels`` (or the fields' positions) and tested on the test
    split; with ``judge.data``, on a copy of the data built with those settings changed; with
    ``judge.colour: value``, on the images' brightest channel only (blind to hue, for a class that
    does not depend on the ink's colour). For the first n examples of ``split`` (those where
    ``where`` is true), the graph value ``output`` is computed from the batch and classified. ``accuracy``: fraction classified as ``target``;
    ``per_target``: the same per target class; ``reference``: the judge's accuracy on real test
    images (the ceiling; with ``where`` and one labelled image field, on the flagged examples' real
    images, and ``reference_whole_split`` on all), ``reference_per_target`` per class (whole
    split); ``input_accuracy`` (with an image ``input``): the untranslated inputs judged as the
    target (the baseline); ``agreement`` (with an image ``input`` and a ``target`` that is a data
    field, the example's own label): outputs judged the same class as their input (class
    preservation measured against the judge's view of the input, so the judge's own errors do not
    cap it);
    ``confusion``: rows target class, columns judged class. With multi-hot labels (a multi-label
    judge) and targets: ``accuracy`` is the mean over attributes, ``per_attribute`` and
    ``all_attributes`` (every attribute right), with references on real test images.
    """
    s = JudgeAccuracyParams(**settings)
    info = ctx.data.info
    j = s.judge
    images, labels = judge_fields(j.images, j.labels)
    name = info.get("name") or ctx.spec.data.dataset
    bundle = ctx.dataset(j.data) if j.data else ctx.data
    judge = judge_for(name, bundle, images=images, labels=labels, epochs=j.epochs, seed=j.seed,
                      colour=j.colour, device=ctx.device, quiet=True)
    image_shape = tuple(ctx.data.train[images[0]].shape[1:])
    graph_target = isinstance(s.target, str) and s.target not in ctx.data.train
    wanted = [s.output] + ([s.target] if graph_target else [])
    preds, targets, on_input = [], [], []
    left = s.n
    generator = ctx.generator if s.seed is None else torch.Generator().manual_seed(s.seed)
    with rng_from(generator, ctx.device) as seed, torch.no_grad():
        for batch in ctx.batches(s.split, s.batch_size):
            if left <= 0:
                break
            keep = _selected(batch, s.where)
            values = ctx.evaluate(wanted, dict(batch))
            out = point_value(values[s.output], s.output, "output")
            if tuple(out.shape[1:]) != image_shape:
                raise ValueError(f"{s.output!r} has shape {tuple(out.shape)} but the judge's images "
                                 f"({images[0]}) are {image_shape}; set `output:` to images in the data space")
            target = _target_rows(s, batch, values, out.shape[0])
            idx = keep.nonzero().reshape(-1)[:left]
            left -= len(idx)
            preds.append(judge.predict(out[idx.to(out.device)], info))
            targets.append(target[idx])
            if s.input is not None:
                if s.input not in batch:
                    raise KeyError(f"data has no field {s.input!r} (fields: {sorted(batch)}); set `input:`")
                x_in = batch[s.input]
                if tuple(x_in.shape[1:]) == image_shape:
                    on_input.append(judge.predict(x_in[idx.to(x_in.device)], info))
    if not preds or sum(len(p) for p in preds) == 0:
        raise ValueError(f"no examples to judge in the {s.split!r} split" + (f" where {s.where!r} is true"
                                                                              if s.where else ""))
    pred, target = torch.cat(preds), torch.cat(targets)
    protocol = {"split": s.split, "n": int(pred.shape[0]), "output": s.output, "target": s.target,
                "target_is_field": isinstance(s.target, str) and not graph_target,
                "input": s.input, "where": s.where, "seed": seed, "seed_setting": s.seed,
                "judge": judge.describe()}
    reference = _reference_where(ctx, judge, s, images, labels)
    if judge.mode == "attributes":
        out = _attribute_results(judge, pred, target, on_input, s, protocol, info)
    else:
        out = _class_results(judge, pred, target, on_input, s, protocol, info, images)
    if reference is not None:
        # the ceiling of these examples, not of the whole split (held-out combinations are harder)
        out["reference_whole_split"] = out["reference"]
        out["reference"] = reference["accuracy"]
        if "all_attributes" in reference:
            out["reference_all_attributes"] = reference["all_attributes"]
    return out


def _reference_where(ctx, judge, s: JudgeAccuracyParams, images: list, labels: list | None) -> dict | None:
    """With ``where``: the judge's scores on the real images of the flagged examples (one labelled image
    field only); otherwise None."""
    if s.where is None or labels is None or len(images) != 1:
        return None
    x, y, mode = judge_data(ctx.data, s.split, images, labels)
    if judge.mode == "attributes" and mode == "classes":  # one-hot rows of a multi-hot field
        y = F.one_hot(y, judge.num_classes).float()
    keep = (ctx.data.test if s.split == "test" else ctx.data.train)[s.where].detach().cpu()
    return score(judge.predict(x[keep]), y[keep], judge.mode, judge.num_classes)


def _selected(batch: dict, where: str | None) -> torch.Tensor:
    size = next(iter(batch.values())).shape[0]
    if where is None:
        return torch.ones(size, dtype=torch.bool)
    if where not in batch:
        raise KeyError(f"data has no field {where!r} (fields: {sorted(batch)}); set `where:` to a boolean field")
    mask = batch[where].detach().cpu()
    if mask.dtype != torch.bool or mask.dim() != 1:
        raise ValueError(f"`where: {where}` must name a boolean field of shape (n,), got {mask.dtype} "
                         f"{tuple(mask.shape)}")
    return mask


def _class_results(judge, pred, target, on_input, s, protocol, info, images) -> dict:
    k = judge.num_classes
    target = _as_classes(target, k, s.target)
    counts = confusion_matrix(target, pred, k, k)
    present = counts.sum(dim=1)
    ref = judge.test["per_class"]
    per_target = {str(c): counts[c, c].item() / present[c].item() for c in range(k) if present[c] > 0}
    if judge.settings["labels"] is None:
        names = list(images)
    else:
        names = list(info.get("class_names") or [])
        names = names if len(names) == k else [str(c) for c in range(k)]
    out = {
        "accuracy": (pred == target).double().mean().item(),
        "reference": judge.test["accuracy"],
        "per_target": per_target,
        "reference_per_target": {c: ref[int(c)] for c in per_target},
        "n": int(pred.shape[0]),
        "confusion": counts.tolist(),
    }
    if on_input:
        judged_input = torch.cat(on_input)
        out["input_accuracy"] = (judged_input == target).double().mean().item()
        if protocol["target_is_field"]:
            # The target is the example's own label: the output should keep the input's class.
            # The judge's own errors cap `accuracy` at `reference`; agreement asks only whether
            # the output kept the class the judge sees in its input, which a perfect translation
            # reaches whatever the judge's accuracy.
            out["agreement"] = (judged_input == pred).double().mean().item()
    protocol["class_names"] = names
    out["protocol"] = protocol
    return out


def _attribute_results(judge, pred, target, on_input, s, protocol, info) -> dict:
    a = judge.num_classes
    target = _as_attributes(target, a, s.target)
    right = pred == target
    names = list(info.get("attribute_names") or [])
    names = names if len(names) == a else [str(i) for i in range(a)]
    per_attribute = right.double().mean(dim=0).tolist()
    out = {
        "accuracy": right.double().mean().item(),
        "all_attributes": right.all(dim=1).double().mean().item(),
        "per_attribute": dict(zip(names, per_attribute)),
        "reference": judge.test["accuracy"],
        "reference_all_attributes": judge.test["all_attributes"],
        "reference_per_attribute": dict(zip(names, judge.test["per_class"])),
        "n": int(pred.shape[0]),
    }
    if on_input:
        out["input_accuracy"] = (torch.cat(on_input) == target).double().mean().item()
    protocol["attribute_names"] = names
    out["protocol"] = protocol
    return out
