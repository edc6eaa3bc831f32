"""The recipe's schema: one pydantic section per top-level key (``data``, ``model``, ``train``, …) and
:class:`Recipe` itself.  Defaults live here, and every field's description is its documentation
(``docs/recipe.md`` is generated from them by :mod:`honing.recipe.reference`).
"""

from __future__ import annotations

import math
import os
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RECIPE_VERSION = 1

ColumnKind = Literal["numeric", "categorical", "boolean", "text", "datetime", "identifier", "image"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ReadConfig(_Section):
    """How a file is read (normally sniffed)."""

    delimiter: str | None = Field(None, min_length=1, max_length=1, description="CSV delimiter (one character); sniffed when omitted.")
    encoding: str | None = Field(None, description="Text encoding; sniffed (utf-8, utf-8-sig, cp1252, latin-1) when omitted.")


class SplitConfig(_Section):
    """Train / validation / test split."""

    validation: float = Field(0.15, ge=0, lt=1, description="Fraction of rows for the validation split (model selection).")
    test: float = Field(0.15, ge=0, lt=1, description="Fraction of rows held out for the final test metrics.")
    stratify: bool | None = Field(None, description="Keep class proportions in every split; default: true for classification.")
    group: str | None = Field(None, description="Column whose values never cross splits (e.g. a patient id).")
    time: str | None = Field(None, description="Column to order by: the latest rows go to test, the ones before to validation.")
    column: str | None = Field(None, description="Column naming each row's split (train / validation or dev / test), e.g. an official test set; without validation rows, validation is cut from train. Not a model feature.")

    @model_validator(mode="after")
    def _check(self) -> SplitConfig:
        if self.validation + self.test >= 1:
            raise ValueError("validation + test must be < 1 (some rows must be left to train on)")
        if sum(bool(x) for x in (self.group, self.time, self.column)) > 1:
            raise ValueError("use only one of group, time and column")
        if self.stratify and self.time:
            raise ValueError("a time split cannot be stratified; remove stratify or time")
        return self


class MissingConfig(_Section):
    """Imputation of missing values (fitted on the training split)."""

    numeric: Literal["mean", "median", "most_frequent", "constant"] = Field("median", description="Strategy for numeric columns.")
    categorical: Literal["most_frequent", "constant"] = Field("most_frequent", description="Strategy for categorical and boolean columns.")
    fill_value: float | str | None = Field(None, description="Value used by the 'constant' strategy (0 / 'missing' when omitted).")
    indicator: bool = Field(False, description="Add a 0/1 column per feature that had missing values in training.")


class CleanConfig(_Section):
    """Row cleaning before the split."""

    duplicates: Literal["drop", "keep"] = Field("drop", description="Drop exact duplicate rows before splitting (they would leak across splits).")
    missing: MissingConfig = Field(default_factory=MissingConfig, description="Imputation of missing values. In a numeric column, values that are not numbers or are infinite count as missing (with a one-line warning naming the column).")


class ImageConfig(_Section):
    """How image columns (paths to image files, or an image folder's images) become pixels."""

    size: list[int] | None = Field(None, min_length=2, max_length=2, description="Resize every image to [height, width]; null = keep (then all images must share one size).")
    channels: Literal[1, 3] | None = Field(None, description="1 = grayscale, 3 = RGB; null = from the first image.")
    mean: list[float] | None = Field(None, description="Per-channel mean subtracted after scaling pixels to [0, 1] (one value, or one per channel); with std.")
    std: list[float] | None = Field(None, description="Per-channel standard deviation divided by after the mean; with mean.")

    @model_validator(mode="after")
    def _check(self) -> ImageConfig:
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither")
        if self.size is not None and min(self.size) < 1:
            raise ValueError("size must be two positive integers [height, width]")
        if self.std is not None and min(self.std) <= 0:
            raise ValueError("every std must be > 0")
        return self


class DataConfig(_Section):
    """Where the data comes from and how it is prepared."""

    source: str | None = Field(None, description="Required (except for data.task: reinforcement, which reads data.env). CSV/TSV/Parquet/JSONL path, an image folder (one sub-folder per class), an image array file (.npy, .npz, IDX), or builtin:NAME (titanic, wine_quality, california_housing, breast_cancer, iris, digits, diabetes, mnist_test, pima_diabetes, sst2).")
    labels: str | None = Field(None, description="Labels file (.npy or IDX) for an image-array source (.npy / IDX) whose labels are not inside it; an IDX images file's `-labels-idx1-` sibling is found without it.")
    target: str | None = Field(None, description="Column to predict; builtin datasets have a default.")
    task: Literal["auto", "classification", "regression", "clustering", "reduction", "anomaly", "reinforcement", "generation"] = Field("auto", description="auto infers classification vs regression from the target. Without a target: clustering (cluster ids), reduction (embeddings: PCA, autoencoder), anomaly (anomaly scores); reinforcement trains an agent in data.env; generation trains a generative model (a language model on text, a VAE on images).")
    drop: list[str] = Field(default_factory=list, description="Columns to ignore.")
    types: dict[str, ColumnKind] = Field(default_factory=dict, description="Override inferred column kinds: numeric, categorical, boolean, text, datetime, identifier (identifier = dropped), image (paths to image files).")
    read: ReadConfig = Field(default_factory=ReadConfig, description="How the file is read.")
    split: SplitConfig = Field(default_factory=SplitConfig, description="Train / validation / test split.")
    clean: CleanConfig = Field(default_factory=CleanConfig, description="Row cleaning and imputation.")
    scale: Literal["standard", "minmax", "robust", "none"] = Field("standard", description="Scaling of numeric features.")
    encode: Literal["onehot", "ordinal"] = Field("onehot", description="Encoding of categorical features; unseen categories are handled at prediction time.")
    max_categories: int = Field(30, ge=2, description="Most one-hot columns per categorical feature; rarer values share one 'infrequent' column.")
    text: Literal["tfidf", "tokens", "pretrained", "drop"] = Field("tfidf", description="Free-text columns: TF-IDF features; tokens: ids from a vocabulary fitted on the training split, for rnn/lstm/gru/transformer models; pretrained: ids from a pretrained model's own tokenizer (data.tokenizer; chosen automatically when model.pretrained is a text model); or drop them.")
    tokenizer: str | None = Field(None, description="The tokenizer of data.text: pretrained: builtin:minilm, a Hugging Face model folder or a tokenizer.json; default: model.pretrained's.")
    max_tokens: int = Field(64, ge=1, description="Tokens kept per text value (data.text: tokens or pretrained); longer text is truncated. Batches are padded only to their longest row.")
    image: ImageConfig = Field(default_factory=ImageConfig, description="Decoding of image columns: resize, colour mode, normalisation.")
    augment: list[dict[str, Any]] = Field(default_factory=list, description="Augmentation of the training split only (never validation or test), as steps `{name: NAME, p: …, …}`. Images: hflip, vflip, rotation, resized_crop, color_jitter, gaussian_noise, erasing. Text: text (deletion, swap, synonyms, copies). Tabular: gaussian_noise (std), mixup (alpha; classification, any neural model). See docs/augmentation.md.")
    balance: Literal["none", "class_weight", "oversample", "undersample", "smote"] = Field("none", description="Class balancing of the training split only (classification): class_weight (weights inversely proportional to class counts: sample weights for classic models, a weighted cross-entropy for neural ones, also when streaming), oversample / undersample (random, imbalanced-learn), smote.")
    streaming: Literal["auto", True, False] = Field("auto", description="Stream a Parquet or CSV/TSV file in record batches, or decode an image folder batch by batch, instead of reading it whole (datasets larger than memory; neural model types only; see docs/streaming.md). auto = stream when the data's in-memory size is estimated above 2 GiB (Parquet: rows × columns × 8 bytes; CSV: twice the file size; images: their decoded float32 pixels).")
    shuffle_buffer: int = Field(100_000, ge=1, description="Streaming: rows held in the shuffle buffer (shared by the reader processes; at most 256 MiB of preprocessed rows, fewer for wide rows such as images); training batches are drawn at random from it.")
    workers: int = Field(1, ge=0, description="Streaming: reader processes that read and preprocess batches beside training (0 = in the training process).")
    chunk_rows: int = Field(16_384, ge=1, description="Streaming: rows read from the file (and preprocessed) at a time; memory grows with it.")
    reduce: dict[Literal["pca"], float] | None = Field(None, description="Dimensionality reduction after the preprocessing, fitted on the training split and stored in the bundle: {pca: 0.95} keeps the principal components explaining 95% of the variance, {pca: 10} keeps 10 components (docs/unsupervised.md). Not with images or token ids; on a streamed table fitted on the row sample.")
    env: str | None = Field(None, description="data.task: reinforcement: the gymnasium environment id the agent learns in (extra `rl`), e.g. FrozenLake-v1, CartPole-v1.")
    env_params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the environment (gymnasium.make), e.g. {is_slippery: true, map_name: 4x4}.")

    @field_validator("source", mode="before")
    @classmethod
    def _path_as_text(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value  # a pathlib.Path from Python

    @model_validator(mode="after")
    def _source_or_env(self) -> DataConfig:
        if self.task == "reinforcement":
            if not self.env:
                raise ValueError("env is required by task: reinforcement (a gymnasium environment id, e.g. env: CartPole-v1)")
            if self.source is not None:
                raise ValueError("source is not read by task: reinforcement (the agent learns in data.env); remove it")
        elif self.source is None:
            raise ValueError("source is required (a data file, folder or builtin:NAME); add `source:` to the recipe")
        return self


class LoraConfig(_Section):
    """LoRA adapters (peft) on the pretrained backbone; merged into its weights when training ends."""

    rank: int = Field(8, ge=1, description="Rank r of each low-rank update.")
    alpha: float = Field(16.0, gt=0, description="Scaling: the update is multiplied by alpha / rank.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the adapters' input.")
    target_modules: list[str] = Field(default_factory=lambda: ["query", "value"], min_length=1, description="Names (suffixes) of the backbone's linear layers that get adapters, e.g. [query, key, value, dense] for BERT-like models.")


class FinetuneConfig(_Section):
    """How a pretrained model (model.pretrained) is fine-tuned."""

    mode: Literal["full", "frozen", "lora", "features"] = Field("full", description="full: train every weight (less what freeze says); frozen: train the new head only; lora: LoRA adapters + head; features: embed the data once with the frozen backbone, then train the head on the cached embeddings (fastest).")
    freeze: list[str] = Field(default_factory=list, description="Freeze the parameters whose names match these glob patterns (e.g. ['embeddings.*']); names as in the backbone's state dict.")
    freeze_blocks: int = Field(0, ge=0, description="Freeze the first N blocks (with the embeddings before them).")
    unfreeze_every: int = Field(0, ge=0, description="Gradual unfreezing: start with the head alone trainable and unfreeze one more block, from the top, every K epochs (0 = off).")
    backbone_lr: float = Field(1.0, gt=0, description="Discriminative learning rates: the backbone learns at train.optimizer.lr × this factor (the head at the full rate).")
    layer_decay: float = Field(1.0, gt=0, le=1, description="Layer-wise decay: block i of n learns at the backbone rate × decay^(n - i), so lower blocks move less (1 = off).")
    pooling: Literal["mean", "cls"] = Field("mean", description="Text backbones: sentence embedding = mean of the token states (as sentence-transformers) or the [CLS] state.")
    head_dropout: float = Field(0.1, ge=0, lt=1, description="Dropout before the new head.")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA settings (mode: lora).")
    base_eval: Literal["auto", "zero_shot", "linear_probe", "none"] = Field("auto", description="Evaluate the base model first and report it beside the fine-tuned one: zero_shot (text classes by embedding similarity; a bundle with the same classes as is), linear_probe (logistic/ridge regression on frozen features); auto = zero_shot where it applies, else linear_probe.")
    compare_scratch: bool = Field(False, description="Also train the same network from random weights on the same data, and report it beside the fine-tuned one.")


class ModelConfig(_Section):
    """Which model to train."""

    type: str = Field("auto", description="auto, or a model type (see `honing models`): logistic_regression, linear_regression, ridge, lasso, elastic_net, decision_tree, random_forest, extra_trees, lightgbm, svm, knn, naive_bayes.")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters passed to the model (checked against the model's own). Not with type: auto, whose candidates keep their defaults (tune them with honing tune).")
    candidates: list[str] = Field(default_factory=lambda: ["linear", "random_forest", "lightgbm"], description="Model types tried by type: auto ('linear' = logistic or linear regression by task).")
    pretrained: str | None = Field(None, description="Start from pretrained weights: builtin:minilm (all-MiniLM-L6-v2, extra `text`), a local Hugging Face model folder (config + safetensors + tokenizer), or a honing bundle folder (its network, with a new head). Never downloaded.")
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig, description="Fine-tuning of model.pretrained.")

    @model_validator(mode="after")
    def _pretrained_type(self) -> ModelConfig:
        if self.pretrained and self.type == "auto":
            self.type = "pretrained"
        elif self.pretrained and self.type != "pretrained":
            raise ValueError(f"model.pretrained: fine-tuning uses model.type: pretrained, not {self.type}")
        elif self.type == "pretrained" and not self.pretrained:
            raise ValueError("model.type: pretrained needs model.pretrained (builtin:minilm, a model folder or a bundle)")
        return self


class OptimizerConfig(_Section):
    """The optimizer of neural models."""

    name: Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"] = Field("adamw", description="Optimizer.")
    lr: float = Field(1e-3, gt=0, description="Learning rate (the peak rate when a schedule warms up).")
    weight_decay: float = Field(1e-4, ge=0, description="L2 penalty / decoupled weight decay (adamw).")
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum (sgd, rmsprop).")
    nesterov: bool = Field(False, description="Nesterov momentum (sgd).")


class ScheduleConfig(_Section):
    """How the learning rate changes during training."""

    name: Literal["none", "step", "exponential", "cosine", "warmup_cosine", "warmup_linear", "onecycle", "plateau"] = Field(
        "none", description="Learning-rate schedule.")
    warmup: float = Field(0.05, ge=0, lt=1, description="Fraction of all steps spent warming up linearly (warmup_*).")
    step_size: int = Field(10, ge=1, description="Epochs between decays (step).")
    gamma: float = Field(0.1, gt=0, le=1, description="Decay factor (step, exponential per epoch, plateau).")
    patience: int = Field(5, ge=0, description="Epochs without improvement before the rate drops (plateau).")


class EarlyStoppingConfig(_Section):
    """Stop when a monitored metric stops improving, and restore the best weights."""

    monitor: str = Field("val_loss", description="Logged metric to watch (val_loss, loss, val_accuracy, …).")
    mode: Literal["auto", "min", "max"] = Field("auto", description="auto: max for accuracy/f1/auc/r2, else min.")
    patience: int = Field(10, ge=1, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0, description="Smallest change that counts as an improvement.")


class ClipConfig(_Section):
    """Gradient clipping."""

    norm: float | None = Field(None, gt=0, description="Clip the global gradient norm to this value.")
    value: float | None = Field(None, gt=0, description="Clip every gradient element to [-value, value].")


class TrainConfig(_Section):
    """How neural models are trained (classic models ignore this section)."""

    epochs: int = Field(100, ge=1, description="Most passes over the training split.")
    batch_size: int = Field(256, ge=1, description="Rows per optimizer step, across all processes (each of N processes takes batch_size / N).")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig, description="Optimizer.")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, description="Learning-rate schedule.")
    early_stopping: EarlyStoppingConfig | None = Field(default_factory=EarlyStoppingConfig, description="Early stopping; null turns it off.")
    init: Literal["default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal"] = Field(
        "default", description="Weight initialization of linear/conv/recurrent layers.")
    l1: float = Field(0.0, ge=0, description="L1 penalty on weights, added to the loss.")
    clip: ClipConfig = Field(default_factory=ClipConfig, description="Gradient clipping.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing for classification losses.")
    accumulate: int = Field(1, ge=1, description="Batches whose gradients are summed before each optimizer step.")
    gradient_checkpointing: bool = Field(False, description="Recompute each block's activations in the backward pass instead of keeping them: less memory, more time (mlp, cnn, transformer, recurrent blocks).")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="fp32, or mixed precision: bf16 (CPU/CUDA), fp16 (CUDA, with a grad scaler).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when present, else CPU.")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: the CPUs available).")
    bucket_by_length: bool = Field(False, description="Token inputs: batch rows of similar length together (shuffled within buckets), so dynamic padding pads less.")
    processes: int = Field(1, ge=1, description="Data-parallel processes on this machine (DistributedDataParallel through torchrun: gloo on CPU, NCCL on CUDA); neural models only.")
    strategy: Literal["ddp", "fsdp"] = Field("ddp", description="How several processes share the work: ddp = each holds the whole model and averages gradients; fsdp = parameters, gradients and optimizer state are sharded among them (FSDP2; for models too big for one process's memory). Ignored in one process.")



class CVConfig(_Section):
    """Cross-validation of the chosen model on train + validation (preprocessing refitted in each fold)."""

    folds: int = Field(5, ge=2, description="Folds (K).")
    repeats: int = Field(1, ge=1, description="Repeats of K-fold, each with another shuffle.")
    stratify: bool | None = Field(None, description="Keep class proportions in every fold; default: true for classification.")
    group: str | None = Field(None, description="Column whose values never cross folds (e.g. a patient id); default: data.split.group.")


class EvaluateConfig(_Section):
    """How models are compared, and what the evaluation of the chosen model reports."""

    metric: str = Field("auto", description="Metric for choosing among candidates on the validation split; auto = accuracy (classification) or r2 (regression).")
    cv: CVConfig | None = Field(None, description="Cross-validate the chosen model and the dummy baseline on the same folds: per-fold metrics, mean ± std, 95% interval, paired test; null = off.")
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples for the test metrics' confidence intervals (0 = off).")
    confidence: float = Field(0.95, gt=0, lt=1, description="Level of every confidence interval.")
    threshold: Literal["none", "f1", "youden", "fixed"] = Field("none", description="Binary classifiers: the decision threshold on P(positive), chosen on the validation split (f1: best F1, youden: best TPR - FPR, fixed: threshold_value); stored in the bundle and used by predict. none = 0.5 (argmax).")
    threshold_value: float = Field(0.5, gt=0, lt=1, description="The threshold of threshold: fixed.")
    calibrate: Literal["none", "isotonic", "sigmoid"] = Field("none", description="Calibrate the classifier's probabilities on the validation split (stored in the bundle, applied by predict).")
    worst_rows: int = Field(10, ge=0, description="Worst-predicted test rows (highest loss) listed with their features.")
    slice_gap: float = Field(0.1, gt=0, description="Flag a slice (a category, or a quantile bin of a numeric feature) whose metric is this much worse than overall.")
    explain: bool = Field(True, description="Permutation importance of every feature and partial dependence of the top ones (on the test split).")
    importance_repeats: int = Field(5, ge=1, description="Shuffles per feature for permutation importance.")
    episodes: int = Field(100, ge=1, description="data.task: reinforcement: seeded evaluation episodes (mean and std of episode reward, success rate).")


class AuditConfig(_Section):
    """Data-quality and fairness audit, run before every train (and by `honing audit`)."""

    enabled: bool = Field(True, description="Audit the data before training (audit.json); false skips it.")
    sensitive: list[str] = Field(default_factory=list, description="Sensitive columns (e.g. [Sex]): the data's bias before training and per-group metrics after it.")
    exclude_sensitive: bool = Field(False, description="Keep the sensitive columns out of the model's features (still audited).")
    fail_on: list[str | dict[str, float]] = Field(default_factory=list, description="Checks that stop the run: a check name (stops when it flags anything), or {check: limit} (stops when its value passes the limit), e.g. [split_leakage, {target_leakage: 0.99}, {demographic_parity_difference: 0.1}]. See docs/audit.md for every check.")
    mitigate: Literal["none", "reweigh", "threshold", "exponentiated_gradient"] = Field("none", description="Fairness mitigation for binary classifiers on the first sensitive column: reweigh (sample weights), threshold (a decision threshold per group), exponentiated_gradient (fairlearn's reduction); metrics before and after are reported side by side.")


class TuneConfig(_Section):
    """Hyperparameter search (``honing tune``); ``honing train`` ignores this section."""

    trials: int | None = Field(20, ge=1, description="Trials to run (null: until timeout; grid: at most the whole grid).")
    timeout: float | None = Field(None, gt=0, description="Stop starting new trials after this many seconds.")
    sampler: Literal["tpe", "random", "grid", "gp", "nsga2"] = Field("tpe", description="tpe and gp are Bayesian; grid needs choices or stepped ranges; nsga2 for several objectives.")
    pruner: Literal["none", "median", "halving", "hyperband"] = Field("hyperband", description="Stop unpromising trials early from the validation score they report every epoch (neural) or boosting round (LightGBM).")
    objectives: list[Literal["metric", "latency", "size"]] = Field(default_factory=lambda: ["metric"], min_length=1, description="What to optimise: metric (evaluate.metric on validation), latency (ms per 1000 predicted rows, minimised), size (KB of the fitted model, minimised). Several = multi-objective (a Pareto front).")
    cv: int | None = Field(None, ge=2, description="Score each trial by k-fold cross-validation on train + validation instead of the validation split.")
    workers: int = Field(1, ge=1, description="Trials run in parallel by this many processes on this machine.")
    storage: str | None = Field(None, description="Where the study lives: null = a journal file in the run directory; postgresql://user@host/db (or a journal file path on a shared disk) lets workers on other machines join with `honing tune --join`.")
    study: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Study name in the storage (default: the recipe's name).")
    heartbeat: int = Field(20, ge=1, description="Database storage: seconds between the heartbeats of a running trial; a trial silent for 4 × heartbeat + 10 s (its worker died) is marked interrupted and its parameters run again once.")
    refit: bool = Field(True, description="Retrain the best recipe on train + validation for the final bundle, evaluated on the untouched test split.")
    space: dict[str, Any] | None = Field(None, description="Search space keyed by recipe path, e.g. `train.optimizer.lr: {float: [1.0e-5, 1.0e-1], log: true}`; null = the model type's default space (docs/tuning.md).")


class TrackingConfig(_Section):
    """Experiment tracking on MLflow (every train and tune run); `tracking: false` turns it off."""

    enabled: bool = Field(True, description="Log the run to MLflow (the environment variable HONING_TRACKING=0 also turns it off).")
    uri: str | None = Field(None, description="MLflow tracking URI; default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db in the working directory (artifacts in mlartifacts/ beside it).")
    experiment: str | None = Field(None, description="MLflow experiment (default: the recipe's name).")
    register_model: bool = Field(True, description="Register the run's bundle in the MLflow model registry under the recipe's name (a new version per run).")


class PruneConfig(_Section):
    """Pruning of a neural model (honing compress)."""

    amount: float = Field(0.5, gt=0, lt=1, description="Fraction of the weights (unstructured) or of the neurons / channels (structured) removed in all.")
    structured: bool = Field(True, description="Remove whole neurons (mlp) or channels (cnn) by norm, so the layers shrink and the model gets faster; false zeroes single weights (sparse, same speed).")
    scope: Literal["layer", "global"] = Field("layer", description="Unstructured pruning only: the same fraction in every layer, or the smallest weights of the whole network.")
    steps: int = Field(1, ge=1, le=20, description="Iterative pruning: reach the amount in this many steps, fine-tuning after each.")
    finetune_epochs: int = Field(2, ge=0, description="Epochs of fine-tuning on the training split after each pruning step (0 = none).")


class DistillConfig(_Section):
    """Knowledge distillation into a smaller student (honing compress)."""

    student: dict[str, Any] = Field(default_factory=lambda: {"type": "mlp", "params": {"hidden": [64]}}, description="The student: {type: a neural model type (mlp, …), params: its model.params}.")
    temperature: float = Field(2.0, gt=0, description="Softens the teacher's probabilities (classification).")
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the teacher's soft labels; 1 − alpha goes to the true labels.")
    epochs: int = Field(30, ge=1, description="Training epochs of the student (early stopping on the validation split).")


class CompressConfig(_Section):
    """Making a bundle smaller and faster within a metric budget (honing compress)."""

    max_metric_drop: float = Field(0.01, ge=0, description="The gate: a candidate qualifies when its validation metric is at most this much worse than the original's (in the metric's own units).")
    metric: str | None = Field(None, description="Metric of the gate; default: evaluate.metric.")
    prefer: Literal["size", "latency"] = Field("size", description="Among qualifying candidates, write the smallest (size) or the fastest at batch size 1 (latency).")
    prune: PruneConfig | None = Field(None, description="Try pruning with these settings (neural models).")
    quantize: list[Literal["dynamic", "static", "fp16", "bf16"]] | None = Field(None, description="Try these quantizations: dynamic / static int8 (ONNX Runtime; static calibrates on training rows), fp16 / bf16 weights.")
    distill: DistillConfig | None = Field(None, description="Try distilling the model into a smaller neural student (any teacher, classic or neural).")
    calibration_rows: int = Field(256, ge=16, description="Training rows used to calibrate static quantization.")
    latency_rows: int = Field(200, ge=10, description="Single-row predictions timed per candidate (the median is reported).")


class ServeConfig(_Section):
    """The REST server of a bundle (honing serve); command-line options override these."""

    host: str = Field("127.0.0.1", description="Address to bind; 127.0.0.1 serves this machine only, 0.0.0.0 every interface.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0 = any free port).")
    workers: int = Field(1, ge=1, description="uvicorn worker processes, each with its own copy of the model.")
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Name of an environment variable holding an API key: requests then need `Authorization: Bearer KEY` (401 otherwise). null = no key.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS (e.g. [https://app.example.com], or [\"*\"]); empty = CORS off.")
    max_rows: int = Field(1000, ge=1, description="Most rows (instances) in one request; more → 413.")
    max_body_kb: int = Field(1024, ge=1, description="Largest request body in KiB; larger → 413.")
    unknown_categories: Literal["accept", "reject"] = Field("accept", description="A categorical value not seen in training: accept (encoded like training's rare values) or reject (422).")
    missing: Literal["accept", "reject"] = Field("accept", description="A null feature value: accept (imputed like training) or reject (422).")
    backend: Literal["auto", "native", "onnx"] = Field("auto", description="Model backend: auto = ONNX Runtime when the bundle has model.onnx.")
    log_queue: int = Field(10000, ge=1, description="Prediction-log records waiting to be written; when full, records are dropped (counted), never the request.")


class DriftThresholds(_Section):
    """When drift counts as a breach (honing monitor)."""

    psi: float | None = Field(0.2, gt=0, description="Population stability index of a feature (bins from training) at or above which it drifts; also applied to the predictions. null = not checked.")
    ks_pvalue: float | None = Field(None, gt=0, lt=1, description="Numeric features: drift when the Kolmogorov-Smirnov p-value is below this (null = reported only; with many rows tiny shifts get tiny p-values).")
    chi2_pvalue: float | None = Field(None, gt=0, lt=1, description="Categorical features: drift when the chi-square p-value is below this (null = reported only).")
    missing_change: float | None = Field(0.1, gt=0, le=1, description="Drift when a feature's missing-value rate moves this much from training's (absolute). null = not checked.")


#: What a monitored metric can be (``monitor.performance`` bounds outside it always or never breach):
#: the classification scores are fractions, errors and losses are at least 0, r2 at most 1.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
                     "precision_weighted", "recall_weighted", "f1_weighted", "roc_auc", "pr_auc"), (0.0, 1.0)),
    **dict.fromkeys(("log_loss", "mse", "rmse", "mae", "mape"), (0.0, math.inf)),
    "r2": (-math.inf, 1.0),
}


class MonitorConfig(_Section):
    """Prediction log and monitoring of a served model (honing serve, honing monitor)."""

    log: str | None = Field("sqlite:///predictions.db", description="Where served predictions and feedback are logged: a SQLAlchemy URL (sqlite:///FILE, relative to the working directory; postgresql://user:password@host/db, through psycopg2); null = no log.")
    window: str = Field("1d", pattern=r"^(all|[0-9]+[smhdw])$", description="Logged predictions judged by honing monitor: the last 30m, 12h, 1d, 2w …, or all.")
    min_rows: int = Field(100, ge=1, description="Fewest logged rows in the window for drift to be judged (fewer: reported, never a breach).")
    drift: DriftThresholds = Field(default_factory=DriftThresholds, description="Drift thresholds.")
    performance: dict[str, float] = Field(default_factory=dict, description="Breach when a metric on the labelled feedback passes a bound: {min_accuracy: 0.8, max_rmse: 3.0, …} (min_/max_ + any metric of training's metrics; roc_auc, pr_auc and log_loss for two-class models, as the prediction log keeps the chosen class's probability; a bound outside the metric's range, e.g. min_accuracy: 2, is refused).")
    latency_p99_ms: float | None = Field(None, gt=0, description="Breach when the 99th percentile of request latency (ms) exceeds this.")
    on_breach: str | None = Field(None, description="Command run when a check breaches (the retraining trigger), e.g. \"honing train recipe.yaml --set data.source=new.csv\"; run without a shell, its exit status logged.")

    @model_validator(mode="after")
    def _bounds(self) -> MonitorConfig:
        for key, bound in self.performance.items():
            side, _, metric = key.partition("_")
            if side not in ("min", "max") or not metric:
                raise ValueError(f"performance.{key}: a bound is min_METRIC or max_METRIC, e.g. min_accuracy: 0.8")
            if not math.isfinite(bound):
                raise ValueError(f"performance.{key}: must be a finite number, got {bound}")
            low, high = METRIC_RANGES.get(metric, (-math.inf, math.inf))
            if not low <= bound <= high:
                span = f"at least {low:g}" if high == math.inf else f"at most {high:g}" if low == -math.inf \
                    else f"between {low:g} and {high:g}"
                raise ValueError(f"performance.{key}: {metric} is {span}, so {bound:g} would always or never breach")
        return self


class Recipe(_Section):
    """A honing recipe."""

    recipe_version: Literal[1] = Field(1, description="Schema version of this recipe.")
    name: str = Field("run", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Run name (runs go to runs/NAME/).")
    seed: int = Field(42, description="Seeds Python, NumPy, every split and every model.")
    data: DataConfig = Field(..., description="Data source and preparation.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Model choice.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training of neural models.")
    audit: AuditConfig = Field(default_factory=AuditConfig, description="Data-quality and fairness audit and its gates.")
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig, description="Model comparison and evaluation.")
    tune: TuneConfig = Field(default_factory=TuneConfig, description="Hyperparameter search (honing tune).")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="Experiment tracking on MLflow; false turns it off.")
    compress: CompressConfig = Field(default_factory=CompressConfig, description="Compression of the trained bundle (honing compress); with no prune / quantize / distill, a default ladder is tried.")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="REST serving of the bundle (honing serve).")
    monitor: MonitorConfig = Field(default_factory=MonitorConfig, description="Prediction log, drift and performance monitoring (honing serve, honing monitor).")

    @model_validator(mode="before")
    @classmethod
    def _tracking_switch(cls, raw: Any) -> Any:
        """``tracking: false`` / ``true`` is short for ``tracking: {enabled: false / true}``."""
        if isinstance(raw, dict) and isinstance(raw.get("tracking"), bool):
            raw = {**raw, "tracking": {"enabled": raw["tracking"]}}
        return raw

    @model_validator(mode="after")
    def _mitigation_and_balance(self) -> Recipe:
        """audit.mitigate that weighs the training rows itself, beside a data.balance that cannot join it."""
        method, balance = self.audit.mitigate, self.data.balance
        if method == "reweigh" and balance in ("oversample", "undersample", "smote"):
            raise ValueError(f"audit.mitigate: reweigh weighs the training rows as they are, which data.balance: "
                             f"{balance} resamples; use data.balance: class_weight (its weights multiply reweigh's) "
                             "or none")
        if method == "exponentiated_gradient" and balance != "none":
            raise ValueError(f"audit.mitigate: exponentiated_gradient sets the training rows' weights itself, so "
                             f"data.balance: {balance} cannot apply; set data.balance: none")
        return self

    @model_validator(mode="after")
    def _pretrained_text(self) -> Recipe:
        """A text model in model.pretrained reads its own tokens: data.text defaults to pretrained,
        data.tokenizer to the model."""
        from honing.pretrained_sources import resolve

        spec = self.model.pretrained
        if spec and "text" not in self.data.model_fields_set and resolve(spec).kind == "huggingface":
            self.data.text = "pretrained"
            self.data.tokenizer = self.data.tokenizer or spec
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def section_of(annotation: Any) -> type[BaseModel] | None:
    """The section (model) a field's annotation holds, if any (``X``, ``X | None``, …)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        sub = section_of(arg)
        if sub is not None:
            return sub
    return None
