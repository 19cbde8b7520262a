"""lvmgraph: latent-variable generative models declared as graphs of pluggable components."""
import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("lvmgraph")

from .modules import Params, Prior, ShapeMismatch, check_shape  # noqa: E402
from .data.base import DatasetBundle, DataSettingError, DatasetUnavailable  # noqa: E402
from .data.fill import from_data  # noqa: E402

__all__ = ["hookimpl", "Params", "Prior", "ShapeMismatch", "check_shape",
           "DatasetBundle", "DataSettingError", "DatasetUnavailable", "from_data", "__version__"]
