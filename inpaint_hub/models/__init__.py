"""One sub-package per paper: ``configuration_<m>.py``, ``modeling_<m>.py``, ``convert_<m>_original.py``."""
