"""The seed notebook's CNN, layer for layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

from runtime.preprocess import IMAGE_SIZE, INPUT_SHAPE, NUM_CLASSES

# Initial weights of the ReLU layers: "glorot_uniform" is Keras's default and the notebook's;
# "he_normal" keeps the activations' scale through ReLU layers. The softmax layer stays Glorot.
INITS = ("he_normal", "glorot_uniform")
MIRROR_LAYER = "mirror_average"  # the last layer of a mirror-averaged model
# With turned views, that layer's name ends in this and the turn in degrees: the saved model
# says how it averages, with no file beside it.
TURN_TAG = "_turn"


def build_model(
    n1: int = 8,
    n2: int = 16,
    n3: int = 32,
    n4: int = 64,
    n5: int = 32,
    n6: int = NUM_CLASSES,
    init: str = "glorot_uniform",
) -> keras.Model:
    """3 x [Conv2D 3x3 valid ReLU + MaxPool 2/2], Flatten, Dense n4 ReLU, Dense n5 ReLU, softmax.

    With the defaults: 82,102 parameters (224 + 1168 + 4640 + 73792 + 2080 + 198). ``init`` is
    the ReLU layers' kernel initializer (one of :data:`INITS`); it changes no layer.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = inputs
    for i, filters in enumerate((n1, n2, n3), start=1):
        x = layers.Conv2D(
            filters,
            3,
            strides=1,
            padding="valid",
            activation="relu",
            kernel_initializer=init,
            name=f"conv{i}",
        )(x)
        x = layers.MaxPooling2D(pool_size=2, strides=2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(n4, activation="relu", kernel_initializer=init, name="fc1")(x)
    x = layers.Dense(n5, activation="relu", kernel_initializer=init, name="fc2")(x)
    outputs = layers.Dense(n6, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="signs_cnn")


def mirror_averaged(model: keras.Model, turn: float = 0.0) -> keras.Model:
    """``model`` run on the image and on its mirror image, the outputs averaged; with ``turn``,
    also on both turned by +``turn`` and -``turn`` degrees (six views).

    The layers are shared, not copied: the same 82,102 weights, two or six passes per
    prediction. A mirrored or slightly turned hand shows the same count, and a network trained
    with random flips and turns still errs differently on each view, so the average is steadier
    on hands unlike SIGNS (README, "Training"). The turn is part of the graph (one Gather, a
    multiply and a sum: :func:`turn_taps`), so every exported format computes it and the
    runtime, the export gate and the arm64 check see exactly what was measured.

    Args:
        model: a single-input chain of layers (:func:`build_model`'s network).
        turn: degrees; 0 for the mirror alone.
    """
    import keras

    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    mirror = keras.ops.flip(inputs, axis=2)
    views = [inputs, mirror]
    name = MIRROR_LAYER
    if turn:
        # One table serves both directions: the mirror of a turned mirror image is the image
        # turned the other way.
        turned = [_turned(v, turn) for v in (inputs, mirror)]
        views += turned + [keras.ops.flip(v, axis=2) for v in turned]
        name = f"{MIRROR_LAYER}{TURN_TAG}{turn:g}"
    outputs = [_through(model, v)[0] for v in views]
    return keras.Model(inputs, keras.layers.Average(name=name)(outputs), name=model.name)


def turn_taps(turn: float, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear turn of a ``size`` x ``size`` image by ``turn`` degrees (counter-clockwise, about
    its centre, edges replicated, as OpenCV's warpAffine): for every output pixel the flat
    indices of its 4 source pixels, (4, size * size) int32, and their weights, float32."""
    import cv2

    c = (size - 1) / 2
    m = cv2.invertAffineTransform(cv2.getRotationMatrix2D((c, c), turn, 1.0))
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    sx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    sy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = sx - x0, sy - y0
    index, weight = [], []
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy),
                      (1, 1, fx * fy)):  # fmt: skip
        x = np.clip(x0 + dx, 0, size - 1)
        y = np.clip(y0 + dy, 0, size - 1)
        index.append((y * size + x).ravel())
        weight.append(w.ravel())
    return np.array(index, np.int32), np.array(weight, np.float32)


def _turned(x: Any, turn: float) -> Any:
    import keras

    index, weight = turn_taps(turn)
    n = IMAGE_SIZE * IMAGE_SIZE
    taps = keras.ops.take(keras.ops.reshape(x, (-1, n, 3)), index, axis=1)  # (B, 4, n, 3)
    out = keras.ops.sum(taps * weight[None, :, :, None], axis=1)
    return keras.ops.reshape(out, (-1, *INPUT_SHAPE))


def _average_layer(model: keras.Model):
    return next((layer for layer in model.layers if layer.name.startswith(MIRROR_LAYER)), None)


def is_mirror_averaged(model: keras.Model) -> bool:
    """Whether ``model`` came from :func:`mirror_averaged`."""
    return _average_layer(model) is not None


def averaged_turn(model: keras.Model) -> float:
    """The turn, in degrees, of :func:`mirror_averaged`'s turned views; 0 without them."""
    layer = _average_layer(model)
    if layer is None or TURN_TAG not in layer.name:
        return 0.0
    return float(layer.name.rsplit(TURN_TAG, 1)[1])


def _chain(model: keras.Model) -> list:
    """The network's layers in order, without the input and the average."""
    return [layer for layer in model.layers[1:] if not layer.name.startswith(MIRROR_LAYER)]


def _through(
    model: keras.Model, x: Any, keep: Callable[[Any], bool] = lambda layer: False
) -> tuple[Any, list]:
    """``x`` through :func:`_chain`'s layers (shared, not copied): the output, and the outputs of
    the layers ``keep`` picks.

    A layer's ``output`` is that of its first call, which for a model built in this process may
    belong to another graph (the plain network a mirror-averaged model was made from); a fresh
    call gives this graph's tensors.
    """
    kept = []
    for layer in _chain(model):
        x = layer(x)
        if keep(layer):
            kept.append(x)
    return x, kept


def plain_network(model: keras.Model) -> keras.Model:
    """The single-view network inside ``model`` (its layers, not a copy), or ``model`` itself.

    Training the plain network trains the mirror-averaged model too, at half the cost: a fine-tune
    trains the network the way ``python -m train`` did, and saves the averaged model again.
    """
    import keras

    if not is_mirror_averaged(model):
        return model
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    return keras.Model(inputs, _through(model, inputs)[0], name=model.name)


def activation_model(model: keras.Model) -> keras.Model:
    """A model whose outputs are the first six layers after the input (3 conv + 3 pool)."""
    import keras

    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    _, maps = _through(model, inputs, lambda layer: layer.name.startswith(("conv", "pool")))
    return keras.Model(inputs, maps[:6])
