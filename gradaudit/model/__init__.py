"""The audited model: one interface, implemented for Keras models and SavedModel signatures."""
