"""The stories benchmark (``python -m bench.stories``); its data and scoring live in
``training/stories_data.py``, shared with the training of the join model."""
