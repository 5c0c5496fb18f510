"""Module loggers: children of the Powertools logger `agora`, so their lines share its JSON format and keys."""
from __future__ import annotations

import logging

SERVICE = "agora"


def module_logger(module_name: str) -> logging.Logger:
    """The logger of one module (`module_logger(__name__)`), under the service's own logger."""
    return logging.getLogger(f"{SERVICE}.{module_name}")
