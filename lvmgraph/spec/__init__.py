from .errors import Problem, SourceMap, SpecError
from .load import LoadedSpec, load_spec, load_spec_dict
from .schema import Spec

__all__ = ["Problem", "SourceMap", "SpecError", "LoadedSpec", "load_spec", "load_spec_dict", "Spec"]
