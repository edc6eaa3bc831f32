"""Training-health diagnostics: what went wrong in a run, why, and which recipe keys to change.

:func:`diagnose` runs the rules of :data:`RULES` over the epoch history and the statistics that
:class:`honing.training.health_stats.HealthStats` collected; each rule is an independent function
``(history, stats, context) -> Finding | None`` that stays quiet without its evidence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from honing.registry import Registry

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
DEAD_RELU_MIN_ROWS = 16       # … and trust ≥ 16 rows (a live unit is 0 on all of them w.p. ~2^-16)
IMBALANCE_SHARE = 0.05        # batch_imbalance: the smallest class < 5 % of a batch on average …
IMBALANCE_BALANCED = 0.5      # … and < half its balanced share 1/k (100 balanced classes are fine) …
ABSENT_BATCHES = 0.5          # … or a class absent from ≥ 50 % of the batches although batches hold
ABSENT_ROWS_PER_CLASS = 2.0   # ≥ 2 rows per class on average (a balanced class is then nearly always in)

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
