"""Built-in detectors. Each registers through the ``querywarden.detectors`` entry points."""
