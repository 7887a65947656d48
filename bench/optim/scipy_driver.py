"""scipy.optimize.minimize methods, stepped one iteration at a time inside the one loop.

scipy's minimizers own their loop, so `minimize` runs in a helper thread that asks this
optimizer for every evaluation (`fun`, `hessp`, `hess`) and pauses at every iteration's
callback. Each `step()` answers those requests in the calling thread through the Objective
(so evaluations are torch's, on the step's batch, and counted) until scipy reports its next
iteration. The thread only does numpy work.

`state_dict` stores the function and gradient answers given so far; loading replays them into
a fresh scipy run, which (being deterministic) reaches exactly the same internal state. Hessian
answers are not stored (n² numbers each): the replay recomputes them at the same points.
"""
from __future__ import annotations

import queue
import threading
from collections import deque

import numpy as np
import scipy.optimize
import torch

from bench.optim.flat import FlatOptimizer

METHODS = ("BFGS", "L-BFGS-B", "Newton-CG", "trust-exact", "CG", "trust-ncg", "trust-krylov")
_STOP = object()
# the log entry of a Hessian answer (redone on replay); an int, since state_dict loading
# rebuilds strings and tuples item by item but leaves plain numbers alone
_RECOMPUTE = -1


class _Stopped(Exception):
    """Raised inside the scipy thread to unwind it when the run ends early."""


class ScipyMinimize(FlatOptimizer):
    """One step = one iteration of `scipy.optimize.minimize(method=…)` (float64 on the host)."""

    def __init__(self, params, method: str = "BFGS", options: dict | None = None,
                 max_params: int | None = None):
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        super().__init__(params, dict(method=method, options=dict(options or {}),
                                      max_params=max_params))
        self._thread: threading.Thread | None = None
        self._requests: queue.Queue = queue.Queue()
        self._answers: queue.Queue = queue.Queue()
        self._paused = False          # the scipy thread waits in its callback for a resume
        self._replay: deque = deque()
        self._graph = None            # (objective, parameter versions, ∇f with graph)

    # -- the scipy side (helper thread) ---------------------------------------------------
    def _ask(self, *request):
        self._requests.put(request)
        answer = self._answers.get()
        if answer is _STOP:
            raise _Stopped
        return answer

    def _run(self, x0: np.ndarray) -> None:
        group = self.param_groups[0]
        method = group["method"]
        extra = {}
        if method in ("Newton-CG", "trust-ncg", "trust-krylov"):
            extra["hessp"] = lambda x, p: self._ask("hessp", x.copy(), p.copy())
        if method == "trust-exact":
            extra["hess"] = lambda x: self._ask("hess", x.copy())
        try:
            result = scipy.optimize.minimize(
                lambda x: self._ask("fun", x.copy()), x0, jac=True, method=method,
                callback=lambda xk: self._ask("iter", np.array(xk, copy=True)),
                options=group["options"], **extra)
            self._requests.put(("done", result.x, str(result.message)))
        except _Stopped:
            pass
        except Exception as exc:   # reported to the training loop, which records the error
            self._requests.put(("error", exc))

    # -- the torch side (caller's thread) --------------------------------------------------
    @torch.no_grad()
    def step(self, closure):
        obj = self.objective(closure)
        state = self.flat_state
        if state.get("done"):
            return obj.loss()
        state.setdefault("log", [])
        if self._thread is None:
            self._start(obj)
        elif self._paused:
            self._paused = False
            self._answers.put(None)
        return self._serve(obj, state)

    def _start(self, obj) -> None:
        x0 = self.flat_state.setdefault("x0", obj.flat()).double().cpu().numpy()
        self._replay = deque(self.flat_state["log"])
        self._thread = threading.Thread(target=self._run, args=(x0,), daemon=True)
        self._thread.start()

    def _serve(self, obj, state):
        loss = None
        while True:
            kind, *args = self._requests.get()
            if kind == "error":
                raise args[0]
            if kind == "done":
                state["done"], state["message"] = True, args[1]
                obj.set_flat(self._to_param(args[0]))
                return loss if loss is not None else obj.loss()
            if self._replay:                     # reloaded: answer from the record
                record = self._replay.popleft()
                if isinstance(record, int):      # Hessian answers are not kept: recompute
                    record, _ = self._evaluate(obj, kind, args, loss)
                self._answers.put(_for_scipy(record))
                continue
            if kind == "iter":
                obj.set_flat(self._to_param(args[0]))
                state["log"].append(None)
                self._paused = True
                return loss if loss is not None else obj.loss()
            record, loss = self._evaluate(obj, kind, args, loss)
            # gradients are kept for replay; Hessian answers (n² numbers) are recomputed then
            state["log"].append(record if kind == "fun" else _RECOMPUTE)
            self._answers.put(_for_scipy(record))

    def _evaluate(self, obj, kind: str, args: list, loss):
        """The answer to one request, kept as torch tensors in the parameters' dtype (so the
        record survives state_dict casting exactly)."""
        x = self._to_param(args[0])
        if not torch.equal(obj.flat(), x):   # setting equal values would still bump versions
            obj.set_flat(x)
        with torch.enable_grad():
            if kind == "fun":
                value, g = obj.value_and_gradient()
                return (float(value), g), value
            g_graph = self._gradient_graph(obj, x)
            if kind == "hessp":
                return obj.hvp(g_graph, self._to_param(args[1])).detach(), loss
            return obj.hessian(g_graph).detach(), loss

    def _gradient_graph(self, obj, x: torch.Tensor) -> torch.Tensor:
        """∇f with its graph at x, kept for the Hessian products that scipy's Newton-CG asks
        for one after another at the same point (one gradient, not one per product)."""
        versions = tuple(p._version for p in self._params)   # parameters untouched since?
        cached = self._graph
        if cached is None or cached[0] is not obj or cached[1] != versions:
            _value, g_graph = obj.value_and_gradient(create_graph=True)
            self._graph = cached = (obj, versions, g_graph)
        return cached[2]

    def _to_param(self, array: np.ndarray) -> torch.Tensor:
        p = self._params[0]
        return torch.as_tensor(np.asarray(array), dtype=p.dtype, device=p.device)

    def load_state_dict(self, state_dict):
        self.close()
        super().load_state_dict(state_dict)

    def close(self) -> None:
        """Unwind the scipy thread (the run ended before scipy did)."""
        if self._thread is not None and self._thread.is_alive():
            self._answers.put(_STOP)
            self._thread.join(timeout=5)
        self._thread, self._paused, self._graph = None, False, None
        self._requests, self._answers = queue.Queue(), queue.Queue()


def _for_scipy(record):
    if record is None:
        return None
    if isinstance(record, tuple):
        value, grad = record
        return value, grad.double().cpu().numpy()
    return record.double().cpu().numpy()
