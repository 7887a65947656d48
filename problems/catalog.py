"""The PROBLEMS registry: every problem a spec can name. Factories take a Context first."""
from bench.registry import Registry
from problems import landscapes, logistic, quadratic, saddle, toy, vision

PROBLEMS = Registry("problem")
PROBLEMS.register("quadratic", skip_params=1, sample={"dim": 2, "kappa": 10})(quadratic.quadratic)
PROBLEMS.register("saddle", skip_params=1, sample={"dim": 3, "negative": 1})(saddle.saddle)
PROBLEMS.register("rosenbrock", skip_params=1, sample={})(landscapes.rosenbrock)
PROBLEMS.register("rastrigin", skip_params=1, sample={"dim": 2})(landscapes.rastrigin)
PROBLEMS.register("logistic", skip_params=1, sample={"samples": 200, "features": 5})(logistic.logistic)
VISION_SAMPLE = {"data": "mnist", "subset": 256, "test_subset": 256}
PROBLEMS.register("logreg", skip_params=1, sample=VISION_SAMPLE)(vision.logreg)
PROBLEMS.register("mlp", skip_params=1, sample=dict(VISION_SAMPLE, hidden=[32]))(vision.mlp)
PROBLEMS.register("cnn", skip_params=1, sample=dict(VISION_SAMPLE, subset=128))(vision.cnn)
PROBLEMS.register("toy_mlp", skip_params=1, sample={})(toy.toy_mlp)
