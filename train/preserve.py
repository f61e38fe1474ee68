"""Fine-tuning that keeps what the base model knew: distillation against forgetting.

Plain fine-tuning on a user's samples moves every weight toward the new pictures and loses part
of SIGNS. Learning without forgetting (Li & Hoiem, 2016) adds, during ``fit`` only, ``distill``
times the KL divergence from the frozen base model's output to the new model's. It counts on the
images whose label the base model already gets right; where the base is wrong (the user's new
look), only the labels count, so the penalty never pulls toward a mistake. "Right" compares
top classes, so a hand-free image (uniform target, whose top is class 0) counts when the base
model's top class on it is 0; the base's output there is near uniform anyway.

Measured on other-hands' person folds (README, "Forgetting"): without it, three of four
30-people fine-tunes lost more than 2 points of SIGNS validation; with ``distill`` 1.0 none did.
An L2 pull toward the base weights (L2-SP, 0.01 per squared difference) did not keep them.

The saved model is the plain network: the wrapper exists only while fitting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


def distilled(model: keras.Model, distill: float) -> keras.Model:
    """``model`` wrapped for ``fit`` with the distillation term; its weights are trained in place.

    Args:
        model: the base model, trained further in place.
        distill: weight of the distillation term against the label loss (0: plain fine-tuning).
    """
    import keras
    from keras import ops

    teacher = None
    if distill > 0:
        teacher = keras.models.clone_model(model)
        teacher.set_weights(model.get_weights())
        teacher.trainable = False

    class Distilled(keras.Model):
        def __init__(self) -> None:
            super().__init__(name=f"{model.name}_distilled")
            self.net = model

        def call(self, x, training=None):
            return self.net(x, training=training)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            loss = super().compute_loss(x, y, y_pred, sample_weight, training)
            if teacher is None or not training:  # held-out loss (the epoch choice): labels only
                return loss
            t = teacher(x, training=False)
            right = ops.cast(ops.argmax(t, -1) == ops.argmax(y, -1), t.dtype)
            eps = keras.config.epsilon()
            kl = ops.sum(t * (ops.log(t + eps) - ops.log(y_pred + eps)), axis=-1)
            return loss + distill * ops.mean(right * kl)

    return Distilled()
