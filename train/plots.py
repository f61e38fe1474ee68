"""The notebook's figures as PNG files: curves, predictions, confusion matrix, activations."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.dataset import Split
from runtime.fsutil import atomic_path
from runtime.preprocess import to_model_input
from train.settings import TrainSettings


def write_all(
    out: Path,
    model,
    history: dict[str, list[float]],
    test: Split,
    test_probs: np.ndarray,
    labels: list[str],
    settings: TrainSettings,
) -> list[Path]:
    """Write every plot into ``out`` and return their paths."""
    import matplotlib

    matplotlib.use("Agg")  # headless: CI and the Pi have no display
    written = [
        _curves(out / "curves.png", history, settings.augment),
        _predictions(out / "predictions.png", test.y, test_probs.argmax(1), labels),
        _confusion(out / "confusion.png", test.y, test_probs.argmax(1), labels),
    ]
    written += _activations(out / "activations", model, test, settings.activation_index, labels)
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _curves(path: Path, history: dict[str, list[float]], augmented: bool) -> Path:
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
        # Keras reports training figures on the (augmented) batches as they were fitted.
        ax.plot(epochs, history[key], label="train (augmented)" if augmented else "train")
        ax.plot(epochs, history[f"val_{key}"], label="validation")
        ax.set_title(f"{title} per epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel("categorical cross-entropy" if key == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def _predictions(path: Path, y: np.ndarray, pred: np.ndarray, labels: list[str]) -> Path:
    import matplotlib.pyplot as plt

    idx = np.arange(len(y))
    wrong = pred != y
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.scatter(idx, y, marker="o", s=40, facecolors="none", edgecolors="tab:blue", label="real")
    ax.scatter(idx, pred, marker="x", s=25, color="tab:green", label="predicted")
    ax.scatter(
        idx[wrong], pred[wrong], marker="x", s=50, color="tab:red", label=f"wrong ({wrong.sum()})"
    )
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("test image index")
    ax.set_ylabel("class (fingers)")
    ax.set_title(f"Real vs predicted class, test set: {np.mean(~wrong):.1%} correct")
    ax.legend(loc="upper left", ncols=3)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _confusion(path: Path, y: np.ndarray, pred: np.ndarray, labels: list[str]) -> Path:
    import matplotlib.pyplot as plt

    n = len(labels)
    cm = np.zeros((n, n), dtype=int)
    np.add.at(cm, (y, pred), 1)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    im = ax.imshow(cm, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                cm[i, j],
                ha="center",
                va="center",
                color="white" if cm[i, j] > cm.max() / 2 else "black",
            )
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("real")
    ax.set_title("Confusion matrix (test set)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def _activations(out: Path, model, test: Split, index: int, labels: list[str]) -> list[Path]:
    import matplotlib.pyplot as plt

    from train.model import activation_model

    maps = activation_model(model).predict(to_model_input(test.x[index : index + 1]), verbose=0)
    written = [
        _save(
            _image_fig(test.x[index], f"{test.names[index]} (class {labels[test.y[index]]})"),
            out / "input.png",
        )
    ]
    feature_layers = [lyr for lyr in model.layers if lyr.name.startswith(("conv", "pool"))]
    for i, (layer, act) in enumerate(zip(feature_layers, maps, strict=True), start=1):
        act = act[0]
        channels = act.shape[-1]
        cols = 8
        rows = int(np.ceil(channels / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.4 + 0.5))
        for c, ax in enumerate(np.ravel(axes)):
            ax.axis("off")
            if c < channels:
                ax.imshow(act[:, :, c], cmap="viridis")
                ax.set_title(str(c), fontsize=7)
        h, w = act.shape[:2]
        fig.suptitle(f"Layer {i}: {layer.name} ({h}x{w}x{channels}), test image {index}")
        written.append(_save(fig, out / f"layer{i}_{layer.name}.png"))
    return written


def _image_fig(img: np.ndarray, title: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(img)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return fig
