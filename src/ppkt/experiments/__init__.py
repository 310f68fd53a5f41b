"""Experiments built from the library: the effectiveness protocol behind ``ppkt demo`` and the benchmark."""
