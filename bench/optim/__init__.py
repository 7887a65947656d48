"""Optimizers torch.optim lacks, written like torch/optim: a validated constructor, `defaults`,
lazy state in `self.state`, the algorithm in the docstring.

Second-order methods take the suite's `Objective` as their closure (bench/objective.py): a
torch closure that also gives gradients with graphs, Hessian-vector products and Hessians.
"""
