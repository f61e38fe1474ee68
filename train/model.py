"""The seed notebook's CNN, layer for layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

from runtime.preprocess import INPUT_SHAPE, NUM_CLASSES

# Initial weights of the ReLU layers: "glorot_uniform" is Keras's default and the notebook's;
# "he_normal" keeps the activations' scale through ReLU layers. The softmax layer stays Glorot.
INITS = ("he_normal", "glorot_uniform")


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


def activation_model(model: keras.Model) -> keras.Model:
    """A model whose outputs are the first six layers after the input (3 conv + 3 pool)."""
    import keras

    feature_layers = [layer for layer in model.layers if layer.name.startswith(("conv", "pool"))]
    return keras.Model(model.inputs, [layer.output for layer in feature_layers[:6]])
