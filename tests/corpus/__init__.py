"""The bad-input corpus (built at test time by make_corpus.py)."""
