"""The program families of the monitor's detection benchmark (benchmarks.monitor_detect):
five kinds of classifier on load_digits, written in plain PyTorch, each with its healthy runs
and its injected bugs.

Families (digits: 1,797 samples, stratified 70/30 split, standardised):
  * resnet: conv stem + BatchNorm + ReLU, two residual blocks conv-BN-ReLU-conv-BN whose last
    BatchNorm weight starts at zero (zero_init_residual), global average pooling, a linear head;
    the digit as a 1x8x8 image;
  * transformer: the 64 pixel values 0..16 as tokens (vocabulary 17) with learned positions,
    a pre-LayerNorm encoder layer (attention through nn.Linear query/key/value/out, a GELU
    feed-forward), mean pooling, a linear head;
  * rnn: the 8 rows of a digit as a sequence of 8 features, an LSTM (a GRU in the healthy runs
    of seed 1 and the bugs under SGD), the last hidden state into a linear head;
  * bnmlp: Linear-BatchNorm-ReLU twice, a linear head (an nn.Sequential);
  * dropcnn: two conv-ReLU-maxpool stages, dropout, a hidden linear layer, dropout, a linear
    head (an nn.Sequential).
Each run: 10 epochs (the transformer 15, which learns more slowly), batches of 32.

Healthy runs: Adam, AdamW and SGD with momentum 0.9, each plain and with weight decay and a
schedule (cosine; step for Adam), two seeds: 12 per family. Bugs (seed 0), each under Adam and
under SGD with momentum (overfitting: Adam only), injected as a person makes them (see
``bug_runs``; overfitting: a 250-sample training subset with 30% of its labels flipped, a wide
model, no regularisation, 40 epochs); :data:`SKIPPED` says which kinds are left out and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .monitor_scenarios import Scenario, bug

# ---------------------------------------------------------------- models


class ResidualBlock(nn.Module):
    """conv-BN-act-conv-BN plus the identity, then act; the last BN's weight starts at zero."""

    def __init__(self, c: int, act: type[nn.Module]):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.act1, self.act2 = act(), act()
        nn.init.zeros_(self.bn2.weight)  # each block starts as the identity (zero_init_residual)

    def forward(self, x):
        return self.act2(x + self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))))


class ResNet(nn.Module):
    def __init__(self, k: int, width: int = 16, act: type[nn.Module] = nn.ReLU, softmax: bool = False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), act())
        self.blocks = nn.Sequential(ResidualBlock(width, act), ResidualBlock(width, act))
        self.head = nn.Linear(width, k)
        self.softmax = softmax

    def forward(self, x):
        out = self.head(self.blocks(self.stem(x.view(-1, 1, 8, 8))).mean((2, 3)))
        return F.softmax(out, dim=1) if self.softmax else out


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate query/key/value/output projections (as BERT)."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.out = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x):
        b, n, d = x.shape

        def split(t):
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        mixed = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)))
        return self.out(mixed.transpose(1, 2).reshape(b, n, d))


class EncoderLayer(nn.Module):
    """Pre-LayerNorm: x + attention(LN(x)), then x + feed-forward(LN(x))."""

    def __init__(self, d: int, heads: int, act: type[nn.Module]):
        super().__init__()
        self.norm1, self.attention = nn.LayerNorm(d), SelfAttention(d, heads)
        self.norm2 = nn.LayerNorm(d)
        self.feed_forward = nn.Sequential(nn.Linear(d, 2 * d), act(), nn.Linear(2 * d, d))

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.feed_forward(self.norm2(x))


class TokenTransformer(nn.Module):
    """A digit's 64 pixel values (0..16) as tokens with learned positions, mean-pooled."""

    def __init__(self, k: int, d: int = 32, layers: int = 1, act: type[nn.Module] = nn.GELU, softmax: bool = False):
        super().__init__()
        self.embed = nn.Embedding(17, d)
        # positions on the scale of the token embeddings: at 0.02 (BERT's) digits learn far slower
        self.position = nn.Parameter(torch.randn(1, 64, d))
        self.layers = nn.Sequential(*(EncoderLayer(d, 4, act) for _ in range(layers)))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, k)
        self.softmax = softmax

    def forward(self, x):
        out = self.head(self.norm(self.layers(self.embed(x) + self.position)).mean(1))
        return F.softmax(out, dim=1) if self.softmax else out


class RecurrentClassifier(nn.Module):
    """A digit's rows as a sequence of 8 steps of 8 features; the last hidden state is classified."""

    def __init__(self, k: int, cell: str = "lstm", hidden: int = 64, softmax: bool = False):
        super().__init__()
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(8, hidden, batch_first=True)
        self.head = nn.Linear(hidden, k)
        self.softmax = softmax

    def forward(self, x):
        out = self.head(self.rnn(x.view(-1, 8, 8))[0][:, -1])
        return F.softmax(out, dim=1) if self.softmax else out


def bn_mlp(k: int, width: int = 128, act: type[nn.Module] = nn.ReLU, softmax: bool = False) -> nn.Module:
    layers = [nn.Linear(64, width), nn.BatchNorm1d(width), act(), nn.Linear(width, width), nn.BatchNorm1d(width)]
    layers += [act(), nn.Linear(width, k)]
    return nn.Sequential(*layers, *([nn.Softmax(dim=1)] if softmax else []))


def dropout_cnn(
    k: int, width: int = 16, dropout: float = 0.3, act: type[nn.Module] = nn.ReLU, softmax: bool = False
) -> nn.Module:
    layers = [nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, width, 3, padding=1), act(), nn.MaxPool2d(2)]
    layers += [nn.Conv2d(width, 2 * width, 3, padding=1), act(), nn.MaxPool2d(2), nn.Flatten()]
    layers += [nn.Dropout(dropout), nn.Linear(8 * width, 64), act(), nn.Dropout(dropout), nn.Linear(64, k)]
    return nn.Sequential(*layers, *([nn.Softmax(dim=1)] if softmax else []))


# ---------------------------------------------------------------- injections


def scale_weights(model: nn.Module, factor: float) -> nn.Module:
    """A bad initialisation: every weight matrix (linear, conv, embedding, recurrent) times ``factor``."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.rsplit(".", 1)[-1].startswith("weight") and p.dim() > 1:
                p.mul_(factor)
    return model


def shift_biases(model: nn.Module, value: float) -> nn.Module:
    """Large negative hidden biases: the shifts right before the activations (BatchNorm biases
    in a BatchNorm network, where a layer's own bias is cancelled; else every conv's and every
    linear layer's but the head's)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms:
        biases = [m.bias for m in norms]
    else:
        layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        biases = [m.bias for m in layers[:-1] if m.bias is not None]
    with torch.no_grad():
        for b in biases:
            b.fill_(value)
    return model


def freeze_backbone(model: nn.Module) -> nn.Module:
    """requires_grad=False on everything but the head (the last linear layer): a fine-tuning
    setup whose unfreeze was forgotten."""
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    keep = {id(p) for p in head.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return model


# ---------------------------------------------------------------- families


@dataclass(frozen=True)
class Family:
    name: str
    # (n_classes, variant, **changes) -> model; changes: act=, softmax=, wide=True
    make: Callable[..., nn.Module]
    lrs: dict[str, float]  # the healthy learning rate of each optimizer
    lr_too_high: dict[str, float]  # a learning rate too high for each optimizer of the bugs
    sequential: bool = False  # an nn.Sequential: a final nn.Softmax is visible to the static lint
    transform: str = "standard"
    epochs: int = 10
    batch: int = 32
    skipped: dict[str, str] = field(default_factory=dict)  # bug kind -> why it makes no sense here


def _resnet(k, variant, act=nn.ReLU, softmax=False, wide=False):
    return ResNet(k, width=48 if wide else 16, act=act, softmax=softmax)


def _transformer(k, variant, act=nn.GELU, softmax=False, wide=False):
    return TokenTransformer(k, d=64 if wide else 32, act=act, softmax=softmax)


def _rnn(k, variant, act=None, softmax=False, wide=False):
    return RecurrentClassifier(k, cell="gru" if variant % 2 else "lstm", hidden=256 if wide else 64, softmax=softmax)


def _bnmlp(k, variant, act=nn.ReLU, softmax=False, wide=False):
    return bn_mlp(k, width=512 if wide else 128, act=act, softmax=softmax)


def _dropcnn(k, variant, act=nn.ReLU, softmax=False, wide=False):
    # the wide, unregularised variant of overfitting has no dropout
    return dropout_cnn(k, width=48 if wide else 16, dropout=0.0 if wide else 0.3, act=act, softmax=softmax)


NO_RELU = "no ReLUs to kill: GELU or gated cells"
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("resnet", _resnet, {"adam": 3e-3, "adamw": 3e-3, "sgdm": 0.05}, {"adam": 0.3, "sgdm": 3.0}),
        Family(
            "transformer",
            _transformer,
            {"adam": 1e-2, "adamw": 1e-2, "sgdm": 0.1},
            {"adam": 0.1, "sgdm": 3.0},
            transform="tokens",
            epochs=15,
            skipped={
                "raw_inputs": "the inputs are integer tokens",
                "nan_data": "the inputs are integer tokens",
                "negative_bias": NO_RELU,
            },
        ),
        Family(
            "rnn",
            _rnn,
            {"adam": 3e-3, "adamw": 3e-3, "sgdm": 0.1},
            {"adam": 0.3, "sgdm": 5.0},
            skipped={"sigmoid_stack": "the cell's gates are sigmoids already", "negative_bias": NO_RELU},
        ),
        Family(
            "bnmlp", _bnmlp, {"adam": 1e-3, "adamw": 1e-3, "sgdm": 0.05}, {"adam": 0.1, "sgdm": 2.0}, sequential=True
        ),
        Family(
            "dropcnn",
            _dropcnn,
            {"adam": 3e-3, "adamw": 3e-3, "sgdm": 0.02},
            {"adam": 0.3, "sgdm": 1.0},
            sequential=True,
        ),
    )
}
SKIPPED = {(f.name, kind): why for f in FAMILIES.values() for kind, why in f.skipped.items()}

# Weight decay of the "with a schedule and weight decay" healthy runs, and their schedule.
WEIGHT_DECAY = {"adam": 1e-4, "adamw": 1e-2, "sgdm": 5e-4}
SCHEDULE = {"adam": "step", "adamw": "cosine", "sgdm": "cosine"}


def healthy_runs(f: Family) -> list[Scenario]:
    runs = []
    for opt, lr in f.lrs.items():
        for regularised in (False, True):
            for seed in (0, 1):
                runs.append(
                    Scenario(
                        f"healthy_{f.name}_{opt}{'_wd_sched' if regularised else ''}_s{seed}",
                        "digits",
                        lambda d, k, seed=seed: f.make(k, seed),
                        opt=opt,
                        lr=lr,
                        weight_decay=WEIGHT_DECAY[opt] if regularised else 0.0,
                        schedule=SCHEDULE[opt] if regularised else None,
                        **_common(f, seed),
                    )
                )
    return runs


def _common(f: Family, seed: int) -> dict:
    return {
        "epochs": f.epochs,
        "batch": f.batch,
        "transform": f.transform,
        "seed": seed,
        "family": f.name,
        "reference": f"healthy_{f.name}_adam_s0",
    }


# The optimizers every bug is injected under (overfitting: Adam only), at the family's healthy
# learning rate unless the learning rate is the bug.
BUG_OPTIMIZERS = ("adam", "sgdm")
TOO_LOW = {"adam": 1e-6, "sgdm": 1e-5}


def bug_runs(f: Family) -> list[Scenario]:
    """The bugs that make sense for the family, seed 0, each under Adam and SGD with momentum
    (the rnn family: an LSTM under Adam, a GRU under SGD)."""
    runs = []
    for variant, opt in enumerate(BUG_OPTIMIZERS):
        kinds: dict[str, dict] = {
            "lr_too_high": {"lr": f.lr_too_high[opt]},
            "lr_too_low": {"lr": TOO_LOW[opt]},
            "sigmoid_stack": {"changes": {"act": nn.Sigmoid}},
            "large_init": {"inject": lambda m: scale_weights(m, 8.0)},
            "negative_bias": {"inject": lambda m: shift_biases(m, -6.0)},
            "raw_inputs": {"transform": "x255"},
            "wrong_loss": {"loss": "mse"},
            "softmax_output": {"changes": {"softmax": True}, "manifest": "always" if f.sequential else "failure"},
            "nan_data": {"transform": "nan"},
            "frozen_backbone": {"inject": freeze_backbone},
            "optimizer_on_copy": {"optimizer_on_copy": True},
            # 30% of the labels flipped: without noise, digits' validation accuracy plateaus
            # instead of falling, and the overfitting never manifests
            "overfitting": {"changes": {"wide": True}, "n_train": 250, "epochs": 40, "label_noise": 0.3},
        }
        for kind, spec in kinds.items():
            if kind in f.skipped or (kind == "overfitting" and opt != "adam"):
                continue
            spec = dict(spec)
            changes, inject = spec.pop("changes", {}), spec.pop("inject", None)

            def build(d, k, changes=changes, inject=inject, variant=variant):
                model = f.make(k, variant, **changes)
                return inject(model) if inject else model

            fields = {**_common(f, 0), "opt": opt, "lr": f.lrs[opt], **spec}
            runs.append(bug(f"{f.name}_{kind}_{opt}", kind, data="digits", build=build, **fields))
    return runs


def family_scenarios(name: str) -> list[Scenario]:
    """The family's healthy runs, then its bugs."""
    f = FAMILIES[name]
    return healthy_runs(f) + bug_runs(f)


def describe_skipped() -> list[str]:
    return [f"{family} {kind} ({why})" for (family, kind), why in SKIPPED.items()]
