"""Training and research code: how the models the stages ship were made (``python -m
training.clean``, ``training.language``, ``training.entities``), and the entities stage's
optional convolutional tagger (``entities_nn``, trained by ``entities_nn_train``; not shipped).
Nothing under ``pipeline/`` imports from here; models stay where the stages load them."""
