from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from .rundir import RunDir, RunDirError
from .state import StateMismatch, TrainingState
from .trainer import NonFiniteLoss, Trainer, TrainingStopped

__all__ = ["CheckpointError", "latest_checkpoint", "load_checkpoint", "save_checkpoint",
           "RunDir", "RunDirError", "StateMismatch", "TrainingState", "NonFiniteLoss", "Trainer", "TrainingStopped"]
