"""Geography: the boundary layers each agency works on, built from PyPI data packages."""
