from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from .rundir import RunDir, RunDirError
from .trainer import NonFiniteLoss, Trainer, TrainingStopped

__all__ = ["CheckpointError", "latest_checkpoint", "load_checkpoint", "save_checkpoint",
           "RunDir", "RunDirError", "NonFiniteLoss", "Trainer", "TrainingStopped"]
