"""The standard Inception metrics (FID, Inception Score) with torchvision's Inception-v3, from a local file.

Axis legend: n examples, f = 2048 Inception pool features, K = 1000 ImageNet classes; data axes
after n (c h w for images).

Opt-in: the weights are a local file (the ``weights:`` setting, else ``$LVMGRAPH_INCEPTION_WEIGHTS``;
see ``lvmgraph.eval.inception``), never downloaded; without one both metrics stop with
``InceptionUnavailable`` saying how to get it. They are torchvision's ImageNet weights, not the
TF-FID ones behind published numbers: close to, not identical with, published FID/IS (the
protocol says so and records the file's sha256). For small greyscale data the evaluator metrics
(``evaluator_fd`` ...) are the better-founded comparison; these exist to put numbers next to papers.
"""
from __future__ import annotations

import torch
from pydantic import Field

from lvmgraph import Params
from lvmgraph.eval.evaluator import canonical_images, native_input_shape
from lvmgraph.eval.inception import (ENV_VAR, INPUT_SIZE, InceptionUnavailable, inception_outputs,
                                     inception_weights_path, load_inception, weights_sha256)
from lvmgraph.eval.stats import frechet_distance, gaussian_fit, inception_score_from_probs, rng_from

from .features import REAL_SUBSET, chunks_of, generate, real_subset, split_field

FEATURE_EXTRACTOR = "torchvision Inception-v3 (IMAGENET1K_V1) pool3, 2048-d"
CLASSIFIER = "torchvision Inception-v3 (IMAGENET1K_V1) fc, 1000 ImageNet classes, softmax"
INPUT = (f"images mapped to [0, 1] from the dataset's value_range (padding cropped), resized to "
         f"{INPUT_SIZE}x{INPUT_SIZE} bilinear (align_corners=False), grey replicated to 3 channels, "
         f"ImageNet-normalised")
WEIGHTS_NOTE = ("torchvision's ImageNet weights, not the TF-FID Inception weights (pt_inception-2015-12-05) "
                "published FID/IS use: comparable between runs with this file, close to but not identical "
                "with published numbers")


class InceptionParams(Params):
    data: str = Field("x", description="data field holding the real examples (what the model generates)")
    batch_size: int = Field(50, gt=0, description="examples per generator call and per Inception forward pass")
    weights: str | None = Field(None, description="local torchvision Inception-v3 state dict (.pth); default: "
                                                  f"${ENV_VAR}. Never downloaded")


class InceptionFidParams(InceptionParams):
    n: int = Field(10000, ge=2, description="generated samples and real test examples (clipped to the "
                                            "test split; the floor uses as many train examples)")


class InceptionScoreParams(InceptionParams):
    data: str = Field("x", description="data field of the real examples; only their shape is used, to check "
                                       "the generated samples")
    n: int = Field(10000, ge=1, description="generated samples (the paper uses 50,000)")
    splits: int = Field(10, gt=0, description="consecutive parts the samples are cut into; IS is "
                                              "computed per part and reported as mean and std")


# ----------------------------------------------------------------------------- helpers

def image_info(ctx, metric: str) -> dict:
    """The dataset info, checked to describe images (Inception sees pictures, not 2-D points)."""
    info = ctx.data.info
    if info.get("kind") != "image":
        raise ValueError(f"{metric} needs image data, but dataset '{info.get('name') or ctx.spec.data.dataset}' "
                         f"has kind '{info.get('kind')}'; for points use mode_coverage or parzen_ll")
    return info


def network(ctx, s: InceptionParams, metric: str) -> dict:
    """Load the network before any sampling (fail fast) -> the protocol entries naming the weights."""
    try:
        path = inception_weights_path(s.weights)
        load_inception(path, device=ctx.device)
    except InceptionUnavailable as err:
        raise InceptionUnavailable(f"metric {metric}: {err}\nFor this metric set `weights:` in its settings "
                                   f"or the environment variable {ENV_VAR}.") from err
    return {"feature_extractor": FEATURE_EXTRACTOR, "weights": str(path), "weights_sha256": weights_sha256(path),
            "input": INPUT, "resize": f"{INPUT_SIZE}x{INPUT_SIZE} bilinear", "note": WEIGHTS_NOTE}


def outputs_of(ctx, path: str, chunks) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunks of examples in the run's format -> Inception features (n f) float64 and logits (n K)."""
    info, shape = ctx.data.info, native_input_shape(ctx.data.info)
    features, logits = [], []
    for x in chunks:
        pooled, scores = inception_outputs(canonical_images(x, info, input_shape=shape), path,
                                           batch_size=x.shape[0], device=ctx.device)
        features.append(pooled.to(torch.float64))
        logits.append(scores.to(torch.float64))
    return torch.cat(features), torch.cat(logits)


def generated_outputs(ctx, s, n: int, like: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """n generated samples -> Inception features (n f), logits (n K) and the seed of the draws."""
    with rng_from(ctx.generator, ctx.device) as seed, torch.no_grad():
        features, logits = outputs_of(ctx, s.weights, generate(ctx, n, s.batch_size, like=like))
    return features, logits, seed


# ----------------------------------------------------------------------------- metrics

def inception_fid(ctx, **settings) -> dict:
    """FID (Heusel et al. 2017) with torchvision's Inception-v3: generated vs real test examples.

    d² = ‖μ_g − μ_r‖² + Tr(Σ_g + Σ_r − 2(Σ_g Σ_r)^½) between Gaussian fits (mean, covariance with
    n − 1) of the 2048-d pool features of n generated samples and n real test examples (default
    10,000, clipped to the test split; the paper's protocol is 50,000 vs the training set, so
    compare runs at equal n only). Images go to [0, 1] and 299x299 bilinear first. ``floor`` is
    the same distance between n real train examples and the test examples: what a perfect
    generator scores at this n. Torchvision weights, not TF-FID: see ``protocol.note``.
    """
    s = InceptionFidParams(**settings)
    image_info(ctx, "inception_fid")
    net = network(ctx, s, "inception_fid")
    s = s.model_copy(update={"weights": net["weights"]})  # the resolved file, for every later call
    test = split_field(ctx, "test", s.data)
    n = min(s.n, test.shape[0])
    n_train = min(n, split_field(ctx, "train", s.data).shape[0])
    fake, _, seed = generated_outputs(ctx, s, n, like=test)
    real_test, _ = outputs_of(ctx, s.weights, chunks_of(real_subset(ctx, "test", s.data, n), s.batch_size))
    real_train, _ = outputs_of(ctx, s.weights, chunks_of(real_subset(ctx, "train", s.data, n_train), s.batch_size))
    real = gaussian_fit(real_test)
    return {
        "fid": frechet_distance(*gaussian_fit(fake), *real),
        "floor": frechet_distance(*gaussian_fit(real_train), *real),
        "protocol": {"n_requested": s.n, "n_generated": n, "n_real_test": n, "n_real_train": n_train,
                     "clipped_to_test_split": n < s.n, "real_subset": REAL_SUBSET, "data": s.data, **net,
                     "feature_dim": fake.shape[1], "seed": seed,
                     "statistic": "Fréchet distance between Gaussian fits (mean, covariance with n − 1), "
                                  "generated vs test; floor: train vs test"},
    }


def inception_score(ctx, **settings) -> dict:
    """Inception Score (Salimans et al. 2016) with torchvision's Inception-v3 on n generated samples.

    p(y|x) = softmax of the 1000 ImageNet logits; the n samples (default 10,000; the paper uses
    50,000) are cut into ``splits`` = 10 consecutive parts and IS = exp(E_x KL(p(y|x) ‖ p(y)))
    is computed per part with p(y) the part's mean; reports ``is`` (mean over parts) and
    ``is_std`` (std, ddof 0). IS lies between 1 and 1000; it rewards confident, varied ImageNet
    predictions, which says little about digits or clothes — report it only next to papers.
    Torchvision weights (1000 classes), not the TF model (1008 outputs): see ``protocol.note``.
    """
    s = InceptionScoreParams(**settings)
    image_info(ctx, "inception_score")
    if s.splits > s.n:
        raise ValueError(f"inception_score cuts n = {s.n} samples into {s.splits} splits: set `n:` to at "
                         f"least `splits:`")
    net = network(ctx, s, "inception_score")
    s = s.model_copy(update={"weights": net["weights"]})
    like = ctx.data.test.get(s.data)
    _, logits, seed = generated_outputs(ctx, s, s.n, like=like)
    score = inception_score_from_probs(logits.softmax(dim=1), s.splits)
    return {
        "is": score.mean,
        "is_std": score.std,
        "protocol": {"n": s.n, "splits": s.splits, "split_sizes": "consecutive, i·n // splits boundaries",
                     "statistic": "exp(E_x KL(p(y|x) || p(y))) per split, p(y) the split's mean; "
                                  "mean and std (ddof 0) over splits",
                     **{k: v for k, v in net.items() if k != "feature_extractor"}, "classifier": CLASSIFIER,
                     "seed": seed},
    }
