"""The TF-free on-device half of signs-edge: preprocessing, datasets, inference backends.

Nothing in this package may import TensorFlow or Keras; the Raspberry Pi has neither.
"""
