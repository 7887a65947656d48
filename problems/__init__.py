"""Problems: analytic landscapes and networks on data.

The PROBLEMS registry lives in problems/catalog.py and is loaded on first use, so that
importing `problems.formulas` (which the torch-free report does) does not import torch.
"""


def __getattr__(name: str):
    if name == "PROBLEMS":
        from problems.catalog import PROBLEMS
        return PROBLEMS
    raise AttributeError(f"module 'problems' has no attribute {name!r}")
