"""Loading: detect the format, check archives and sizes, pre-scan the config, then load."""
