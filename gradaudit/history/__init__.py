"""The training history: the optimizer state and compile config of a file or a model in memory."""
