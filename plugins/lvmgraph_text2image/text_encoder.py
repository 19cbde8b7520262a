"""The sentence encoder phi(t): token embedding + GRU over the caption's real words only (or a bag of words).

Axis legend: b batch, L padded caption length, e token embedding width, f GRU hidden width,
d sentence embedding width (``out_dim``).

Reed et al. (2016) pre-train a char-CNN-RNN with a joint image-text embedding loss and keep it
fixed. Here the encoder is learned jointly with the GAN, from the matching-aware discriminator's
loss (the template's discriminator phase updates it; see ``templates/text2image.yaml`` for why).

Captions arrive as right-padded token ids (0 = ``<pad>``, the captions dataset's convention) with
their lengths. The GRU runs on a packed sequence, so padding never enters it: the same caption
padded to any length, or batched beside longer captions, has the same embedding.

``encoder: bag`` replaces the GRU by a bag of words: phi = linear(sum of the caption's word
vectors). Order is ignored and the embedding is additive in the words, so a caption whose words
were only ever seen in other combinations ("a red ankle boot" when only green ankle boots and
red sneakers were) is, to the generator, the vector sum it has seen in parts:
phi(red boot) - phi(green boot) = phi(red sneaker) - phi(green sneaker). The GRU gives no such
guarantee (an unseen word sequence can land anywhere); this is the zero-shot composition setting.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, PositiveInt
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from lvmgraph import Params

PAD_ID = 0


class TextEncoderParams(Params):
    vocab_size: PositiveInt = Field(
        description="number of token ids, <pad> included: len(info['vocabulary']) of the captions dataset "
                    "(17 on fashion_mnist, 16 on digits, with the default templates)")
    embed_dim: PositiveInt = Field(default=64, description="width of the learned token embedding")
    hidden: PositiveInt = Field(default=128, description="GRU hidden width (per direction)")
    out_dim: PositiveInt = Field(default=128, description="width d of the sentence embedding phi(t)")
    bidirectional: bool = Field(default=False, description="also read the caption right to left; the two final "
                                                            "states are concatenated")
    encoder: Literal["gru", "bag"] = Field(
        default="gru", description="gru: a GRU over the words in order (hidden, bidirectional); bag: the sum of "
                                   "the words' vectors, then linear (order-free and additive in the words, so "
                                   "unseen combinations of seen words compose)")


class TextEncoder(nn.Module):
    """text (b L) int64, text_length (b,) -> phi (b d): final GRU state(s) -> linear (``encoder="bag"``:
    the sum of the word vectors -> linear).

    ``text_length`` may be omitted: it is then the number of non-pad tokens. When given it must
    agree with the padding (real tokens before it, pad after it); a disagreement raises, since it
    means the captions and their lengths come from different places.
    """

    def __init__(self, *, vocab_size: int, embed_dim: int = 64, hidden: int = 128, out_dim: int = 128,
                 bidirectional: bool = False, encoder: str = "gru"):
        super().__init__()
        if encoder not in ("gru", "bag"):
            raise ValueError(f"text_encoder: encoder must be 'gru' or 'bag', got {encoder!r}")
        self.vocab_size = int(vocab_size)
        self.out_dim = int(out_dim)
        self.encoder = encoder
        self.embed = nn.Embedding(self.vocab_size, embed_dim, padding_idx=PAD_ID)
        if encoder == "gru":
            self.rnn = nn.GRU(embed_dim, hidden, batch_first=True, bidirectional=bidirectional)
            self.out = nn.Linear(hidden * (2 if bidirectional else 1), out_dim)
        else:
            self.rnn = None
            self.out = nn.Linear(embed_dim, out_dim)

    def forward(self, text: torch.Tensor, text_length: torch.Tensor | None = None) -> torch.Tensor:
        lengths = self.lengths(text, text_length)
        if self.rnn is None:  # bag of words: only the real words are summed
            real = (text != PAD_ID).unsqueeze(-1)
            return self.out((self.embed(text) * real).sum(dim=1))
        packed = pack_padded_sequence(self.embed(text), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h_n = self.rnn(packed)  # (directions b f), in the input's row order
        return self.out(torch.cat(list(h_n), dim=1))

    def lengths(self, text: torch.Tensor, text_length: torch.Tensor | None) -> torch.Tensor:
        """The validated caption lengths (b,) int64; errors name what to fix."""
        if text.dim() != 2 or text.is_floating_point():
            raise ValueError(f"text_encoder: text must be token ids (batch, length) int64, got "
                             f"{tuple(text.shape)} {text.dtype}")
        if text.numel() and (text.min() < 0 or text.max() >= self.vocab_size):
            raise ValueError(f"text_encoder: token id {int(text.max())} is outside a vocabulary of vocab_size="
                             f"{self.vocab_size}; set vocab_size to len(info['vocabulary']) of the dataset")
        real = text != PAD_ID
        if text_length is None:
            text_length = real.sum(dim=1)
        text_length = text_length.reshape(-1).long()
        if text_length.shape[0] != text.shape[0]:
            raise ValueError(f"text_encoder: {text_length.shape[0]} lengths for {text.shape[0]} captions")
        if (text_length < 1).any() or (text_length > text.shape[1]).any():
            raise ValueError(f"text_encoder: every caption needs 1 to {text.shape[1]} words; got lengths "
                             f"{sorted(set(text_length.tolist()))}")
        positions = torch.arange(text.shape[1], device=text.device)
        expected = positions[None, :] < text_length[:, None].to(text.device)
        bad = (expected != real).any(dim=1)
        if bad.any():
            row = int(bad.nonzero()[0])
            raise ValueError(f"text_encoder: text_length does not match the captions' padding (row {row}: "
                             f"length {int(text_length[row])}, tokens {text[row].tolist()}); captions are "
                             f"right-padded with 0 and text_length counts their words: give both for the "
                             f"same captions")
        return text_length
