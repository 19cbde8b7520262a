from .base import DatasetBundle, DatasetUnavailable

__all__ = ["DatasetBundle", "DatasetUnavailable"]
