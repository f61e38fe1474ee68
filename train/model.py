"""The seed notebook's CNN, layer for layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

from runtime.preprocess import INPUT_SHAPE, NUM_CLASSES

# Initial weights of the ReLU layers: "glorot_uniform" is Keras's default and the notebook's;
# "he_normal" keeps the activations' scale through ReLU layers. The softmax layer stays Glorot.
INITS = ("he_normal", "glorot_uniform")
MIRROR_LAYER = "mirror_average"  # the last layer of a mirror-averaged model


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


def mirror_averaged(model: keras.Model) -> keras.Model:
    """``model`` run on the image and on its mirror image, the two outputs averaged.

    The layers are shared, not copied: the same 82,102 weights, two passes per prediction. A
    mirrored hand shows the same count, and a network trained with random flips still errs
    differently on the two views, so the average is steadier on hands unlike SIGNS (README,
    "Training"). The saved and exported model is this one, so every format, the runtime and
    the export gate see exactly what was measured.

    Args:
        model: a single-input chain of layers (:func:`build_model`'s network).
    """
    import keras

    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    views = [_through(model, x)[0] for x in (inputs, keras.ops.flip(inputs, axis=2))]
    return keras.Model(inputs, keras.layers.Average(name=MIRROR_LAYER)(views), name=model.name)


def is_mirror_averaged(model: keras.Model) -> bool:
    """Whether ``model`` came from :func:`mirror_averaged`."""
    return any(layer.name == MIRROR_LAYER for layer in model.layers)


def _chain(model: keras.Model) -> list:
    """The network's layers in order, without the input and the mirror average."""
    return [layer for layer in model.layers[1:] if layer.name != MIRROR_LAYER]


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
