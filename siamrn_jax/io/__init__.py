"""Reading and writing the files the tracker meets: frame sources and sequence folders (``sources``),
annotation text (``annotations``) and result files (``results``)."""
