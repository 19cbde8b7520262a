"""GAN-CLS: the matching-aware discriminator loss, and the mismatched captions it needs.

Axis legend: b batch, ... any per-sample shape.

Reed et al. (2016), Algorithm 1: D sees three kinds of pairs, real image + right text (real),
real image + wrong text (fake) and fake image + right text (fake), and maximises
log D(real, right) + 1/2 [log(1 - D(real, wrong)) + log(1 - D(fake, right))].
The wrong text must really be wrong: ``mismatch`` gives every example another example's caption
that differs from its own, which a plain shuffle does not (it can leave a row in place, or move
an identical caption onto it: with templated captions many rows share one).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cls_discriminator_loss(real_right: torch.Tensor, real_wrong: torch.Tensor,
                           fake_right: torch.Tensor) -> torch.Tensor:
    """logits D(x, phi), D(x, phi_wrong), D(G(z, phi), phi) (b, ...) -> () to minimise:

    -log D(real, right) - 1/2 [log(1 - D(real, wrong)) + log(1 - D(fake, right))], each term
    averaged over its batch, D = sigmoid(logit): the negated GAN-CLS objective of Reed et al. (2016).
    """
    real = F.binary_cross_entropy_with_logits(real_right, torch.ones_like(real_right))
    wrong = F.binary_cross_entropy_with_logits(real_wrong, torch.zeros_like(real_wrong))
    fake = F.binary_cross_entropy_with_logits(fake_right, torch.zeros_like(fake_right))
    return real + 0.5 * (wrong + fake)


def mismatch_index(key: torch.Tensor) -> torch.Tensor:
    """key (b, ...) -> (b,) int64: for each row i a row j whose key differs from row i's, uniformly.

    When every row has the same key, j is any other row (j != i); with one row, i itself. Draws
    from torch's global RNG, which the trainer checkpoints, so a resumed run draws the same rows.
    """
    b = key.shape[0]
    if b == 0:
        return torch.zeros(0, dtype=torch.long, device=key.device)
    _, ids = torch.unique(key.reshape(b, -1), dim=0, return_inverse=True)  # equal rows, equal ids
    allowed = ids[:, None] != ids[None, :]
    eye = torch.eye(b, dtype=torch.bool, device=key.device)
    stuck = ~allowed.any(dim=1)  # only this caption in the batch: fall back to another example
    allowed[stuck] = ~eye[stuck] if b > 1 else eye[stuck]
    return torch.multinomial(allowed.float(), 1).squeeze(1)


def mismatch(x: torch.Tensor, key: torch.Tensor | None = None) -> torch.Tensor:
    """x (b, ...), key (b, ...) -> x's rows rearranged (b, ...): row i comes from a row j with key_j != key_i.

    The "wrong text" of GAN-CLS: ``phi_wrong: mismatch(phi, text)`` gives each example the
    embedding of a different caption from the same batch (compared by the token ids ``key``;
    default: x itself). Rows are drawn uniformly among those with a different key, with
    replacement; if the whole batch shares one key, among the other rows. Gradients flow into
    the chosen rows of x.
    """
    key = x if key is None else key
    if key.shape[0] != x.shape[0]:
        raise ValueError(f"mismatch: x has {x.shape[0]} rows but key has {key.shape[0]}; give one key per row")
    return x[mismatch_index(key)]
