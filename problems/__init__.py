"""The PROBLEMS registry: every problem a spec can name. Factories take a Context first."""
from bench.registry import Registry
from problems import landscapes, logistic, quadratic, saddle

PROBLEMS = Registry("problem")
PROBLEMS.register("quadratic", skip_params=1, sample={"dim": 2, "kappa": 10})(quadratic.quadratic)
PROBLEMS.register("saddle", skip_params=1, sample={"dim": 3, "negative": 1})(saddle.saddle)
PROBLEMS.register("rosenbrock", skip_params=1, sample={})(landscapes.rosenbrock)
PROBLEMS.register("rastrigin", skip_params=1, sample={"dim": 2})(landscapes.rastrigin)
PROBLEMS.register("logistic", skip_params=1, sample={"samples": 200, "features": 5})(logistic.logistic)
