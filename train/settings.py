"""Training settings: one dataclass, saved as config.json beside the model.

Fields that default to None take their value from the named recipe (``RECIPES``); a value
given explicitly (a flag) wins over the recipe's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from runtime.cli import opt
from runtime.errors import SettingError
from train.model import INITS

# The recipes. "robust" is the default (see README, "Training"); "notebook" reproduces the
# seed notebook (batch size 1, no augmentation, constant Adam 1e-3, 40 epochs: ~3 min);
# "flips" is the previous default (flips and 10% shifts, batch 8), kept for comparison.
RECIPES: dict[str, dict] = {
    "robust": dict(
        epochs=150, batch_size=26, learning_rate=0.002, schedule="cosine",
        flip=True, rotation=25.0, zoom=0.3, shift=0.1, photometric=0.5,
        background_p=0.35, outliers=6, small_hands=2, label_smoothing=0.05, val_shifts=3,
        weight_init="he_normal", mirror_average=True, turn_average=0.0,
    ),
    "flips": dict(
        epochs=40, batch_size=8, learning_rate=0.001, schedule="constant",
        flip=True, rotation=0.0, zoom=0.0, shift=0.1, photometric=0.0,
        background_p=0.0, outliers=0, small_hands=0, label_smoothing=0.0, val_shifts=0,
        weight_init="glorot_uniform", mirror_average=False, turn_average=0.0,
    ),
    "notebook": dict(
        epochs=40, batch_size=1, learning_rate=0.001, schedule="constant",
        flip=False, rotation=0.0, zoom=0.0, shift=0.0, photometric=0.0,
        background_p=0.0, outliers=0, small_hands=0, label_smoothing=0.0, val_shifts=0,
        weight_init="glorot_uniform", mirror_average=False, turn_average=0.0,
    ),
}  # fmt: skip
_RECIPE = "; when omitted, the recipe's"


@dataclass
class TrainSettings:
    data: str | None = opt(
        None, help="dataset folder or .h5 file (default: $SIGNS_DATA, else ./data)"
    )
    out: str = opt("artifacts", help="output directory for the model, metrics and plots")
    recipe: str = opt(
        "robust",
        choices=tuple(RECIPES),
        help="robust (augmentation, backgrounds, hand-free images), flips (the previous "
        "default) or notebook (the seed notebook: batch 1, no augmentation)",
    )
    epochs: int | None = opt(None, help="training epochs" + _RECIPE)
    # The robust recipe's batch holds batch_size - outliers hands plus `outliers` hand-free images,
    # `small_hands` of which show a hand too small to count (train/augment.py).
    batch_size: int | None = opt(None, help="mini-batch size, hand-free images included" + _RECIPE)
    learning_rate: float | None = opt(None, help="Adam's (peak) learning rate" + _RECIPE)
    schedule: str | None = opt(
        None, choices=("constant", "cosine"), help="learning-rate schedule" + _RECIPE
    )
    beta_1: float = 0.9
    beta_2: float = 0.999
    flip: bool | None = opt(None, help="random horizontal flips" + _RECIPE)
    rotation: float | None = opt(None, help="largest random rotation, degrees" + _RECIPE)
    zoom: float | None = opt(None, help="random zoom up to 1 + ZOOM, in or out" + _RECIPE)
    shift: float | None = opt(None, help="largest random shift, fraction of the side" + _RECIPE)
    photometric: float | None = opt(
        None, help="colour/light/blur/noise jitter strength, 0 = off" + _RECIPE
    )
    background_p: float | None = opt(None, help="share of hands put on a new background" + _RECIPE)
    outliers: int | None = opt(
        None, help="hand-free images per batch, trained to a uniform output" + _RECIPE
    )
    small_hands: int | None = opt(
        None,
        help="how many of the hand-free images per batch hold a hand shrunk to a fifth to two "
        "fifths of the picture (also trained to a uniform output)" + _RECIPE,
    )
    label_smoothing: float | None = opt(None, help="cross-entropy label smoothing" + _RECIPE)
    val_shifts: int | None = opt(
        None, help="shifted copies of each validation image for the checkpoint choice" + _RECIPE
    )
    weight_init: str | None = opt(
        None, choices=INITS, help="initial weights of the ReLU layers" + _RECIPE
    )
    mirror_average: bool | None = opt(
        None,
        help="save the model as the average of its outputs on the image and its mirror image "
        "(the same weights, two passes)" + _RECIPE,
    )
    turn_average: float | None = opt(
        None,
        help="with --mirror-average, also average over both views turned by +TURN_AVERAGE and "
        "-TURN_AVERAGE degrees (six passes), 0 = off" + _RECIPE,
    )
    ema: bool = False  # an exponential moving average of the weights (measured: no gain, README)
    background_bank: int = 3000  # backgrounds precomputed once per run (seeded)
    val_size: int = 120  # images held out of the 1080 for validation (960/120, as the notebook)
    seed: int = opt(1, help="seed for weights, shuffling, augmentation and the validation split")
    activation_index: int = opt(0, help="test image whose activation maps are plotted")
    plots: bool = opt(True, help="skip the PNG plots (curves, predictions, confusion, activations)")
    verbose: int = opt(
        1, choices=(0, 1, 2), help="Keras progress: 0 silent, 1 progress bar, 2 one line per epoch"
    )

    # Fine-tuning (train/finetune.py): a folder of the user's samples adapts `init` instead of
    # training from scratch.
    fine_tune: str | None = opt(
        None,
        metavar="DIR",
        help="fine-tune --init on the samples in DIR/<label>/ instead of training from scratch "
        "(--out then defaults to artifacts/fine-tuned)",
    )
    init: str = opt("artifacts/model.keras", help="base model for --fine-tune (never modified)")
    fine_tune_epochs: int = opt(10, help="fine-tune epochs")
    # A third of the base recipe's rate: large steps would undo what the base model learned.
    fine_tune_learning_rate: float = opt(0.0003, help="fine-tune Adam learning rate")
    fine_tune_user_share: float = opt(
        0.5, help="fraction of each fine-tune epoch's images that are user samples (repeated)"
    )
    # Distillation from the base model against forgetting (train/preserve.py); 1.0 was chosen
    # on the SIGNS validation split and the user's held-out samples (README, "Forgetting").
    fine_tune_distill: float = opt(
        1.0, help="weight of distillation from the base model where it is right (0: off)"
    )
    fine_tune_holdout: float = opt(
        0.2, help="fraction of each class's samples held out to choose the fine-tune epoch"
    )

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise SettingError("recipe", self.recipe, f"expected one of {', '.join(RECIPES)}")
        for name in ("epochs", "batch_size", "val_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SettingError(name, value, "must be at least 1")
        for name in (
            "rotation", "zoom", "photometric", "outliers", "small_hands", "label_smoothing"
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None and value < 0:
                raise SettingError(name, value, "must be >= 0")
        if self.activation_index < 0:
            raise SettingError("activation_index", self.activation_index, "must be >= 0")
        if self.shift is not None and not 0 <= self.shift < 0.5:
            raise SettingError("shift", self.shift, "must be in [0, 0.5)")
        if self.background_p is not None and not 0 <= self.background_p <= 1:
            raise SettingError("background_p", self.background_p, "must be in [0, 1]")
        if self.fine_tune_epochs < 1:
            raise SettingError("fine_tune_epochs", self.fine_tune_epochs, "must be at least 1")
        if self.fine_tune_distill < 0:
            raise SettingError("fine_tune_distill", self.fine_tune_distill, "must be >= 0")
        for name in ("fine_tune_user_share", "fine_tune_holdout"):
            if not 0 < getattr(self, name) < 1:
                raise SettingError(name, getattr(self, name), "must be between 0 and 1")
        r = self.resolved()
        if not 0 <= r.turn_average < 90:
            raise SettingError("turn_average", r.turn_average, "must be in [0, 90)")
        if r.turn_average and not r.mirror_average:
            raise SettingError("turn_average", r.turn_average, "needs --mirror-average")
        if r.outliers >= r.batch_size:
            raise SettingError("outliers", r.outliers, f"must be below batch_size {r.batch_size}")
        if r.small_hands > r.outliers:
            raise SettingError("small_hands", r.small_hands, f"must be <= outliers {r.outliers}")

    def resolved(self) -> TrainSettings:
        """A copy with every None field filled from the recipe (the recipe's turned views only
        with the mirror average: ``--no-mirror-average`` alone saves the plain network)."""
        base = dict(RECIPES[self.recipe])
        if self.mirror_average is False:
            base["turn_average"] = 0.0
        unset = [f.name for f in fields(self) if getattr(self, f.name) is None and f.name in base]
        return replace(self, **{name: base[name] for name in unset}) if unset else self

    @property
    def augment(self) -> bool:
        """Whether training images are transformed at all (False: the notebook's plain data)."""
        r = self.resolved()
        return bool(r.flip or r.rotation or r.zoom or r.shift or r.photometric or r.background_p)

    def to_dict(self) -> dict:
        d = asdict(self.resolved())
        d["out"] = str(Path(self.out))
        return d
