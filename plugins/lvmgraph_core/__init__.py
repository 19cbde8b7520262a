"""lvmgraph's core building blocks, registered through the public hooks like any plugin."""
from .components import register_components
from .priors import register_priors
from .ops import register_ops
from .losses import register_losses
from .optim import register_optimizers
from .schedules import register_schedules
from .metrics import register_metrics
from .loggers import register_loggers

__all__ = ["register_components", "register_priors", "register_ops", "register_losses",
           "register_optimizers", "register_schedules", "register_metrics", "register_loggers"]
