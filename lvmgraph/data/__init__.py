from .base import Augment, DatasetBundle, DataSettingError, DatasetUnavailable

__all__ = ["Augment", "DatasetBundle", "DataSettingError", "DatasetUnavailable"]
