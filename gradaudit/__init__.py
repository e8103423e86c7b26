"""gradaudit: find where gradients die in a saved Keras model.

Importing the package is cheap: TensorFlow is imported only when a model is
audited.
"""

__version__ = "0.1.0"
