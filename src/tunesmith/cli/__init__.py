"""The ``tunesmith`` command line: thin layers over the library's calls."""
