"""Report data (plain, frozen), the catalogue of codes, selection, baselines, merge,
JSON in and out."""
