"""Training-health diagnostics: what went wrong in a run, why, and which recipe keys to change.

:class:`HealthStats` is a trainer callback that cheaply collects gradient norms, dead-ReLU fractions
and class counts as plain Python data (it survives a checkpoint and resume).  :func:`diagnose` runs
the rules of :data:`RULES` over the epoch history and those stats; each rule is an independent
function ``(history, stats, context) -> Finding | None`` that stays quiet without its evidence.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from honing.registry import Registry
from honing.training.callbacks import Callback

# ---- thresholds: each rule's evidence must clear these; chosen to stay quiet on healthy runs ----
MIN_EPOCHS = 3                # fewer epochs say nothing about a trend (not_decreasing)
OVERFIT_RISE = 0.10           # overfitting: validation loss ≥ 10 % above its minimum …
OVERFIT_EPOCHS = 3            # … in each of the last 3 epochs …
OVERFIT_TRAIN_FALL = 0.02     # … while the training loss fell ≥ 2 % since that minimum
UNDERFIT_MARGIN = 0.10        # underfitting: the final training loss must beat the dummy baseline by 10 %
PLATEAU_EPOCHS = 5            # a plateau: over the last 5 epochs …
PLATEAU_CHANGE = 0.01         # … the training loss moved < 1 % (relative) …
PLATEAU_HIGH = 0.80           # … while still ≥ 80 % of the baseline's loss (or of the first epoch's)
NOT_DECREASING = 0.01         # not_decreasing: the last training loss is not ≥ 1 % below the first
DIVERGE_FACTOR = 3.0          # divergence: the last loss > 3× the lowest before it …
DIVERGE_MIN_RISE = 0.10       # … and the rise is ≥ 10 % of the first loss (wobbles near 0 are noise)
VANISH_ABS = 1e-7             # vanishing: a gradient norm below this (unless every norm is: converged) …
VANISH_RATIO = 1e-3           # … or a per-element RMS 1000× below the largest weight's …
VANISH_EPOCHS = 3             # … in each of the last 3 recorded epochs
EXPLODE_ABS = 1e3             # exploding: an epoch-mean gradient norm above this, or non-finite …
EXPLODE_GROWTH = 100.0        # … or the global norm grew 100× from the first to the last epoch …
EXPLODE_GROWTH_FLOOR = 10.0   # … to end above 10 (growth from ~0 at initialisation is not explosion)
DEAD_RELU_FRACTION = 0.5      # dead_relus: ≥ 50 % of a ReLU layer's units are 0 for every probed row
DEAD_RELU_PROBE_ROWS = 64     # probe the first batches of each epoch until this many rows are seen …
DEAD_RELU_MIN_ROWS = 16       # … and trust ≥ 16 rows (a live unit is 0 on all of them w.p. ~2^-16)
IMBALANCE_SHARE = 0.05        # batch_imbalance: the smallest class < 5 % of a batch on average …
IMBALANCE_BALANCED = 0.5      # … and < half its balanced share 1/k (100 balanced classes are fine) …
ABSENT_BATCHES = 0.5          # … or a class absent from ≥ 50 % of the batches although batches hold
ABSENT_ROWS_PER_CLASS = 2.0   # ≥ 2 rows per class on average (a balanced class is then nearly always in)

RELU_TYPES = (nn.ReLU, nn.ReLU6)


class HealthStats(Callback):
    """Collects gradient norms, dead-ReLU fractions and class counts for :func:`diagnose`.

    * gradient norms: the L2 norm of each parameter's gradient, averaged over the epoch's batches.
      The Trainer clears gradients (optimizer step) before ``on_batch_end``, so tensor hooks
      (``param.register_hook``) take them during ``backward``: before clipping, per batch (times
      ``train.accumulate``), unscaled by a fp16 ``trainer.scaler``.  The sums stay on the device
      until the epoch ends; ``grad_every=k`` looks at every k-th batch only.
    * dead ReLUs: forward hooks on ``nn.ReLU``/``nn.ReLU6`` modules during the first training batches
      of an epoch (until ``DEAD_RELU_PROBE_ROWS`` rows: one batch at usual sizes).  A unit is one
      output element (all dimensions but the first, the batch), dead if 0 for every probed row.
      Functional ``F.relu``/``torch.relu`` calls are not modules and cannot be hooked: not seen.
      A module applied k times per forward gives k layers (``act``, ``act#1``, …).
    * class counts: :meth:`observe_batch_targets`, called with each batch's class-id targets; if it
      is never called the imbalance rule is skipped.
    """

    def __init__(self, grad_every: int = 1):
        self.grad_every = max(1, int(grad_every))
        self._epochs: list[dict] = []
        self._params: dict[str, list[int]] = {}  # parameter -> shape
        self._targets: dict | None = None
        self._relu_hooks: list[Any] = []
        self._grad_hooks: list[Any] = []
        self._reset_epoch()

    def _reset_epoch(self) -> None:
        self._grad_sums: dict[str, torch.Tensor] = {}  # parameter -> sum of its batch gradient norms
        self._grad_counts: dict[str, int] = {}
        self._grad_factor = 1.0  # train.accumulate / loss scale of the coming backward
        self._batches = 0
        self._alive: dict[str, torch.Tensor] = {}  # ReLU layer -> units nonzero on some probed row
        self._calls: dict[str, int] = {}  # ReLU module -> calls in the current batch
        self._batch_rows = self._probe_rows = 0

    # ------------------------------------------------------------------ callback hooks

    def on_fit_start(self, trainer: Any) -> None:
        if getattr(trainer, "epoch", 0) == 0:  # a fresh run; a resumed one keeps the loaded state
            self._epochs, self._params, self._targets = [], {}, None

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self._remove_hooks()
        self._reset_epoch()
        self._grad_factor = _grad_factor(trainer)
        for name, module in trainer.model.named_modules():
            if isinstance(module, RELU_TYPES):
                self._relu_hooks.append(module.register_forward_hook(self._relu_hook(name or "relu")))
        for name, param in trainer.model.named_parameters():
            if param.requires_grad:
                self._params[name] = list(param.shape)
        self._watch_gradients(trainer.model, True)  # batch 0 is sampled

    def on_batch_end(self, trainer: Any, batch: int, loss: float) -> None:
        targets = getattr(trainer, "batch_targets", None)  # the Trainer exposes each batch's targets
        if targets is not None and self._batches % self.grad_every == 0:
            self.observe_batch_targets(targets)
        self._batches += 1
        self._watch_gradients(trainer.model, self._batches % self.grad_every == 0)  # hooks cost: sampled only
        self._grad_factor = _grad_factor(trainer)  # the scaler updated after this step
        if self._relu_hooks:
            self._probe_rows += self._batch_rows
            self._batch_rows, self._calls = 0, {}
            if self._probe_rows >= DEAD_RELU_PROBE_ROWS:
                self._remove_hooks(grads=False)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        self._remove_hooks()
        record: dict[str, Any] = {"epoch": int(epoch), "grad_norm": {
            name: total.item() / self._grad_counts[name] for name, total in self._grad_sums.items()}}
        if self._alive:
            record["dead_relu"] = {key: {"dead": 1.0 - alive.float().mean().item(), "units": alive.numel()}
                                   for key, alive in self._alive.items()}
            record["dead_relu_rows"] = self._probe_rows
        self._epochs = [e for e in self._epochs if e["epoch"] < record["epoch"]] + [record]
        self._reset_epoch()

    def on_fit_end(self, trainer: Any) -> None:
        self._remove_hooks()

    # ------------------------------------------------------------------ collection

    def _relu_hook(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not module.training or not isinstance(output, torch.Tensor) or output.dim() < 2:
                return  # validation / prediction passes run in eval mode
            call = self._calls.get(name, 0)
            self._calls[name] = call + 1
            key = name if call == 0 else f"{name}#{call}"
            with torch.no_grad():
                alive = (output.detach() != 0).reshape(output.shape[0], -1).any(0)
            self._batch_rows = max(self._batch_rows, output.shape[0])
            seen = self._alive.get(key)
            if seen is None:
                self._alive[key] = alive
            elif seen.shape == alive.shape:  # variable-length inputs change the shape: skip those
                seen |= alive

        return hook

    def _grad_hook(self, name: str) -> Callable:
        def hook(grad: torch.Tensor) -> None:
            with torch.no_grad():
                values = grad.coalesce().values() if grad.is_sparse else grad
                norm = values.detach().float().norm() * self._grad_factor
            seen = self._grad_sums.get(name)
            self._grad_sums[name] = norm if seen is None else seen + norm
            self._grad_counts[name] = self._grad_counts.get(name, 0) + 1

        return hook

    def _watch_gradients(self, model: nn.Module, on: bool) -> None:
        """Hook the parameters' gradients for the coming batch (on), or unhook them (off)."""
        if on and not self._grad_hooks:
            self._grad_hooks = [param.register_hook(self._grad_hook(name))
                                for name, param in model.named_parameters() if param.requires_grad]
        elif not on and self._grad_hooks:
            for handle in self._grad_hooks:
                handle.remove()
            self._grad_hooks = []

    def _remove_hooks(self, grads: bool = True) -> None:
        for handle in self._relu_hooks + (self._grad_hooks if grads else []):
            handle.remove()
        self._relu_hooks = []
        self._grad_hooks = [] if grads else self._grad_hooks

    def observe_batch_targets(self, y: Any) -> None:
        """Count the classes in one training batch; floating-point (regression) targets are ignored."""
        y = torch.as_tensor(y).detach()
        if y.is_floating_point() or y.is_complex() or (y.dim() > 1 and y.shape[-1] != 1):
            return
        y = y.reshape(-1).long().cpu()
        y = y[y >= 0]  # ignore_index rows (-100)
        if y.numel() == 0:
            return
        counts, total = torch.bincount(y).tolist(), int(y.numel())
        targets = self._targets = self._targets or {"batches": 0, "rows": 0, "classes": {}}
        targets["batches"] += 1
        targets["rows"] += total
        for c, n in enumerate(counts):
            if n:
                rec = targets["classes"].setdefault(str(c), {"rows": 0, "share_sum": 0.0, "batches": 0})
                rec["rows"] += n
                rec["share_sum"] += n / total
                rec["batches"] += 1  # batches the class appears in

    # ------------------------------------------------------------------ state

    @property
    def stats(self) -> dict:
        """Plain Python data: ``epochs`` (one record per epoch), ``params`` (shapes), ``targets``."""
        return copy.deepcopy({"epochs": self._epochs, "params": self._params, "targets": self._targets})

    def state_dict(self) -> dict:
        return self.stats

    def load_state_dict(self, state: dict) -> None:
        state = copy.deepcopy(state)
        self._epochs = list(state.get("epochs", []))
        self._params = dict(state.get("params", {}))
        self._targets = state.get("targets")


def _grad_factor(trainer: Any) -> float:
    """``train.accumulate`` (the Trainer divides each batch's loss by it) over the fp16 loss scale."""
    accumulate = getattr(getattr(trainer, "cfg", None), "accumulate", 1)
    scaler = getattr(trainer, "scaler", None)
    enabled = scaler is not None and scaler.is_enabled()
    return accumulate / ((float(scaler.get_scale()) or 1.0) if enabled else 1.0)


# ---------------------------------------------------------------------- findings and rules


@dataclass
class Finding:
    """One diagnosis: what was seen (with numbers), why it likely happens, which keys to change."""

    rule: str
    severity: Literal["warning", "info"]
    message: str
    cause: str
    remedy: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RuleContext:
    """What a rule may know beyond the history and the stats."""

    baseline_loss: float | None = None
    task: str | None = None


RULES = Registry("diagnostic rule")  # entries carry ``cause`` and ``remedy`` metadata


def diagnose(history: list[dict], stats: dict | None = None, baseline_loss: float | None = None,
             task: str | None = None) -> list[Finding]:
    """Run every rule in :data:`RULES` over the epoch ``history``; warnings first, then infos.

    ``history`` rows hold ``epoch``, ``loss`` and optionally ``val_loss``, ``lr``, ``val_<metric>``;
    ``stats`` is :attr:`HealthStats.stats`; ``baseline_loss`` the dummy baseline's training loss.
    """
    context = RuleContext(baseline_loss, task)
    rows = [dict(row) for row in history]
    findings = [f for name in RULES.names() if (f := RULES.get(name)(rows, stats, context)) is not None]
    return sorted(findings, key=lambda f: f.severity != "warning")


def format_findings(findings: list[Finding]) -> list[str]:
    """One console line per finding: ``warning [rule] message — cause; try: remedy``."""
    return [f"{f.severity} [{f.rule}] {f.message} — {f.cause}; try: {f.remedy}" for f in findings]


def _found(rule: str, message: str, severity: Literal["warning", "info"] = "warning") -> Finding:
    """A finding of ``rule`` with the cause and remedy given when it was registered."""
    meta = RULES.entry(rule).meta
    return Finding(rule, severity, message, meta["cause"], meta["remedy"])


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _series(history: list[dict], key: str) -> list[tuple[int, float]]:
    """(epoch, value) of every row with a numeric ``key`` (non-finite values kept)."""
    values = [(int(row.get("epoch", i + 1)), _number(row.get(key))) for i, row in enumerate(history)]
    return [(e, v) for e, v in values if v is not None]


@RULES.register("overfitting",
                cause="the model memorises the training rows instead of learning what generalises",
                remedy="set train.early_stopping.patience, raise train.optimizer.weight_decay or "
                       "model.params.dropout, shrink model.params.hidden, or get more data")
def overfitting(history: list[dict], stats: dict | None, ctx: RuleContext) -> Finding | None:
    """Validation loss ≥ 10 % above its minimum for the last epochs while the training loss falls."""
    rows = [(int(r.get("epoch", i + 1)), _number(r.get("loss")), _number(r.get("val_loss")))
            for i, r in enumerate(history)]
    rows = [r for r in rows if r[1] is not None and r[2] is not None]
    if len(rows) <= OVERFIT_EPOCHS or not all(math.isfinite(v) for r in rows for v in r[1:]):
        return None
    best = min(range(len(rows)), key=lambda i: rows[i][2])
    (e0, t0, v0), (e1, t1, v1) = rows[best], rows[-1]
    if v0 <= 0 or t0 <= 0 or len(rows) - 1 - best < OVERFIT_EPOCHS:
        return None
    if min(r[2] for r in rows[-OVERFIT_EPOCHS:]) < v0 * (1 + OVERFIT_RISE) or t1 > t0 * (1 - OVERFIT_TRAIN_FALL):
        return None
    return _found("overfitting", f"validation loss rose {v1 / v0 - 1:.0%} from epoch {e0} to {e1} "
                                 f"while training loss fell {1 - t1 / t0:.0%}")


@RULES.register("underfitting",
                cause="the model lacks capacity, training time or freedom (too much regularisation)",
                remedy="widen or deepen model.params.hidden, raise train.epochs or train.optimizer.lr, "
                       "lower train.optimizer.weight_decay, train.l1 and model.params.dropout")
def underfitting(history: list[dict], stats: dict | None, ctx: RuleContext) -> Finding | None:
    """Final training loss no better than the dummy baseline, or a plateau far above it (info)."""
    losses = [v for _, v in _series(history, "loss")]
    if not losses or not all(map(math.isfinite, losses)):
        return None
    last, base = losses[-1], _number(ctx.baseline_loss)
    base = base if base is not None and base > 0 else None
    if base is not None and last > base * (1 - UNDERFIT_MARGIN):
        return _found("underfitting", f"final training loss {last:.4g} is not {UNDERFIT_MARGIN:.0%} "
                                      f"below the dummy baseline's {base:.4g}")
    reference = base or losses[0]
    if len(losses) <= PLATEAU_EPOCHS or reference <= 0:
        return None
    if base is None and last >= losses[0] * (1 - NOT_DECREASING):
        return None  # flat from the start: not_decreasing reports it
    window = losses[-PLATEAU_EPOCHS:]
    change = (max(window) - min(window)) / max(abs(sum(window) / len(window)), 1e-12)
    if change >= PLATEAU_CHANGE or last < PLATEAU_HIGH * reference:
        return None
    what = "the dummy baseline's" if base else "the first epoch's"
    return _found("underfitting", f"training loss plateaued at {last:.4g} ({change:.1%} change over the "
                                  f"last {len(window)} epochs), still {last / reference:.0%} of {what} "
                                  f"{reference:.4g}", "info")


@RULES.register("not_decreasing",
                cause="the optimizer makes no progress: a learning rate far too low, frozen parameters, "
                      "or features unrelated to the target",
                remedy="raise train.optimizer.lr, check data.target and that features are scaled (data.scale)")
def not_decreasing(history: list[dict], stats: dict | None, ctx: RuleContext) -> Finding | None:
    """The training loss at the end is not ≥ 1 % below where it started."""
    series = _series(history, "loss")
    if len(series) < MIN_EPOCHS or not all(math.isfinite(v) for _, v in series):
        return None
    (e0, first), (e1, last) = series[0], series[-1]
    if last < first - abs(first) * NOT_DECREASING:
        return None
    return _found("not_decreasing", f"training loss went from {first:.4g} (epoch {e0}) to {last:.4g} "
                                    f"(epoch {e1}), not {NOT_DECREASING:.0%} lower")


@RULES.register("divergence",
                cause="the learning rate is too high: steps overshoot and the loss blows up",
                remedy="lower train.optimizer.lr (e.g. 10×), set train.clip.norm (e.g. 1.0) or warm up "
                       "with train.schedule.name: warmup_cosine")
def divergence(history: list[dict], stats: dict | None, ctx: RuleContext) -> Finding | None:
    """The loss becomes non-finite, or ends > 3× its lowest value (and well above noise)."""
    for key in ("loss", "val_loss"):
        bad = [(e, v) for e, v in _series(history, key) if not math.isfinite(v)]
        if bad:
            return _found("divergence", f"{key} became {bad[0][1]} at epoch {bad[0][0]}" + _lr_at(history, bad[0][0]))
    series = _series(history, "loss")
    if len(series) < 2:
        return None
    first, (e1, last) = series[0][1], series[-1]
    e_low, low = min(series[:-1], key=lambda s: s[1])
    if low <= 0 or last <= DIVERGE_FACTOR * low or last - low < DIVERGE_MIN_RISE * abs(first):
        return None
    return _found("divergence", f"training loss rose {last / low:.1f}× from {low:.4g} (epoch {e_low}) "
                                f"to {last:.4g} (epoch {e1})" + _lr_at(history, e1))


def _lr_at(history: list[dict], epoch: int) -> str:
    lrs = [v for e, v in _series(history, "lr") if e == epoch]
    return f" at lr {lrs[0]:.3g}" if lrs else ""


def _grad_epochs(stats: dict | None) -> list[dict]:
    return [e for e in (stats or {}).get("epochs", []) if e.get("grad_norm")]


@RULES.register("vanishing_gradients",
                cause="the signal shrinks on its way back through saturating activations (sigmoid/tanh) "
                      "or too-small initial weights, so the early layers stop learning",
                remedy="set train.init: kaiming_normal (ReLU) or xavier_normal (tanh), model.params.activation: "
                       "relu or gelu, model.params.norm: layer or batch, or fewer model.params.hidden layers")
def vanishing_gradients(history: list[dict], stats: dict | None, ctx: RuleContext) -> Finding | None:
    """Some weights' gradients < 1e-7, or 1000× below the largest weight's, in each recent epoch."""
    records = _grad_epochs(stats)[-VANISH_EPOCHS:]
    shapes = (stats or {}).get("params", {})
    flagged = set.intersection(*(_vanishing(r["grad_norm"], shapes) for r in records)) if records else set()
    if not flagged:
        return None
    norms = records[-1]["grad_norm"]
    weakest = min(flagged, key=norms.__getitem__)
    strongest = max((n for n in norms if math.isfinite(norms[n])), key=norms.__getitem__)
    return _found("vanishing_gradients", f"{len(flagged)} of {len(norms)} parameters got vanishing gradients "
                                         f"in the last {len(records)} epoch(s): '{weakest}' {norms[weakest]:.1e} "
                                         f"vs '{strongest}' {norms[strongest]:.1e}")


def _vanishing(norms: dict[str, float], shapes: dict[str, list[int]]) -> set[str]:
    """Weights (≥ 2-d parameters, if any) whose gradient is tiny, absolutely or per element."""
    finite = {n: v for n, v in norms.items() if math.isfinite(v)}
    weights = [n for n in finite if len(shapes.get(n, [0, 0])) >= 2] or list(finite)
    if not weights:
        return set()
    rms = {n: finite[n] / math.sqrt(max(1, math.prod(shapes.get(n, [1])))) for n in weights}
    top = max(rms.values())
    all_tiny = all(v < VANISH_ABS for v in finite.values())  # a loss near 0: converged, not vanishing
    return {n for n in weights if (finite[n] < VANISH_ABS and not all_tiny) or rms[n] < top * VANISH_RATIO}


@RULES.register("exploding_gradients",
                cause="gradients grow layer by layer: large initial weights, no normalisation or too high "
                      "a learning rate",
                remedy="set train.clip.norm (e.g. 1.0), lower train.optimizer.lr, set train.init: "
                       "kaiming_normal or xavier_normal, or model.params.norm: layer or batch")
def exploding_gradients(history: list[dict], stats: dict | None, ctx: RuleContext) -> Finding | None:
    """A gradient norm above 1e3 (or non-finite), or the global norm growing 100× over the run."""
    records = _grad_epochs(stats)
    for rec in records:
        name, value = max(rec["grad_norm"].items(), key=lambda kv: kv[1] if math.isfinite(kv[1]) else math.inf)
        if not math.isfinite(value) or value > EXPLODE_ABS:
            return _found("exploding_gradients", f"gradient norm of '{name}' reached {value:.3g} (mean over "
                                                 f"epoch {rec['epoch']}; limit {EXPLODE_ABS:g})")
    if len(records) < 2:
        return None
    g0, g1 = (math.sqrt(sum(v * v for v in r["grad_norm"].values())) for r in (records[0], records[-1]))
    if g0 <= 0 or g1 < EXPLODE_GROWTH_FLOOR or g1 / g0 < EXPLODE_GROWTH:
        return None
    return _found("exploding_gradients", f"global gradient norm grew {g1 / g0:.3g}× from {g0:.3g} (epoch "
                                         f"{records[0]['epoch']}) to {g1:.3g} (epoch {records[-1]['epoch']})")


@RULES.register("dead_relus",
                cause="large updates or negative biases pushed those units below 0 for every input, where "
                      "they get no gradient and never recover",
                remedy="lower train.optimizer.lr, set train.init: kaiming_normal, or "
                       "model.params.activation: leaky_relu or gelu")
def dead_relus(history: list[dict], stats: dict | None, ctx: RuleContext) -> Finding | None:
    """≥ 50 % of the units of some ReLU layer output 0 for every probed row (latest probed epoch)."""
    probed = [e for e in (stats or {}).get("epochs", [])
              if e.get("dead_relu") and e.get("dead_relu_rows", 0) >= DEAD_RELU_MIN_ROWS]
    rec = probed[-1] if probed else {"dead_relu": {}}
    dead = {k: v for k, v in rec["dead_relu"].items() if v["dead"] >= DEAD_RELU_FRACTION}
    if not dead:
        return None
    worst = max(dead, key=lambda k: dead[k]["dead"])
    return _found("dead_relus", f"{len(dead)} of {len(rec['dead_relu'])} ReLU layers have ≥ "
                                f"{DEAD_RELU_FRACTION:.0%} dead units at epoch {rec['epoch']}; worst '{worst}': "
                                f"{dead[worst]['dead']:.0%} of {dead[worst]['units']} units output 0 on all "
                                f"{rec['dead_relu_rows']} probed rows")


@RULES.register("batch_imbalance",
                cause="most gradient steps barely see the rare class, so the model learns to ignore it",
                remedy="raise train.batch_size, keep data.split.stratify: true, weight the classes "
                       "(model.params.class_weight: balanced) or resample the rare class")
def batch_imbalance(history: list[dict], stats: dict | None, ctx: RuleContext) -> Finding | None:
    """The rarest class is < 5 % of a batch on average, or absent from most batches (info)."""
    targets = (stats or {}).get("targets")
    if ctx.task == "regression" or not targets or not targets.get("batches") or len(targets["classes"]) < 2:
        return None
    batches, classes = targets["batches"], targets["classes"]
    k, per_batch = len(classes), targets["rows"] / batches
    share = {c: rec["share_sum"] / batches for c, rec in classes.items()}
    absent = {c: 1 - rec["batches"] / batches for c, rec in classes.items()}
    rare = min(share, key=share.__getitem__)
    scarce = share[rare] < min(IMBALANCE_SHARE, IMBALANCE_BALANCED / k)
    missing = [c for c in classes if absent[c] >= ABSENT_BATCHES] if per_batch >= ABSENT_ROWS_PER_CLASS * k else []
    if not scarce and not missing:
        return None
    c = rare if scarce else max(missing, key=absent.__getitem__)
    return _found("batch_imbalance", f"class {c} is {share[c]:.1%} of a batch on average and absent from "
                                     f"{absent[c]:.0%} of {batches} batches (~{per_batch:.0f} rows each, "
                                     f"{k} classes)", "info")
