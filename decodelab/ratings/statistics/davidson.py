"""The Davidson (1970) tie model and a batched Newton solver for its maximum-likelihood fit.

Model. Configuration i has log-strength s_i. For a comparison of a with b let d = s_a - s_b (+ beta * x for the
length-controlled variant, x being the normalised length difference) and nu = exp(theta) >= 0. Then

    P(a preferred) = e^{d/2} / D,   P(b preferred) = e^{-d/2} / D,   P(tie) = nu / D,   D = e^{d/2} + e^{-d/2} + nu,

which is Davidson's pi_a / (pi_a + pi_b + nu sqrt(pi_a pi_b)) with pi = e^s. Among decisive votes
logit P(a preferred) = d exactly, as in plain Bradley-Terry; with no ties in the data nu is fixed at 0 and the
model *is* plain Bradley-Terry.

The negative log-likelihood is a log-sum-exp of functions linear in (s, beta, theta), hence convex, so Newton's
method with a backtracking line search converges to the global optimum. It is batched: B independent problems
(the fit and its bootstrap resamples) share one design and differ only in their row weights, so each iteration
is a few matrix products instead of B Python-level optimiser runs.

Identifiability. The likelihood only sees differences of s. The objective adds 0.5 * (sum s)^2, which does not
change the likelihood but pins the solution to sum s = 0 (centred log-strengths) and makes the Hessian
invertible. Where the maximum-likelihood estimate does not exist (a comparison graph that is not strongly
connected, e.g. a configuration that won every vote), an L2 prior 0.5 * l2 * |s, beta|^2 is added; see
``bradley_terry``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .pairwise import KIND_A, KIND_B, KIND_TIE

# Signed target of u = d / 2 per row kind: +1 when a won, -1 when b won, 0 for a tie.
_Y_U = np.array([1.0, -1.0, 0.0])


@dataclass(frozen=True)
class Design:
    """Rows of the likelihood: row r compares first[r] with second[r] and has outcome kind[r]."""

    n_configs: int
    z: np.ndarray  # (R, q): u_r = z[r] @ phi, phi = (s, beta?)
    zz: np.ndarray  # (R, q*q): outer products of the rows of z, for the Hessian
    kind: np.ndarray  # (R,)
    has_beta: bool
    has_theta: bool

    @property
    def n_params(self) -> int:
        return self.z.shape[1] + int(self.has_theta)


def make_design(
    n_configs: int, first: np.ndarray, second: np.ndarray, kind: np.ndarray, *, x: np.ndarray | None, has_theta: bool
) -> Design:
    """Build the row design; ``x`` (normalised length differences) adds the beta column."""
    rows = len(kind)
    q = n_configs + (x is not None)
    z = np.zeros((rows, q))
    z[np.arange(rows), first] = 0.5
    z[np.arange(rows), second] = -0.5
    if x is not None:
        z[:, n_configs] = 0.5 * x
    zz = (z[:, :, None] * z[:, None, :]).reshape(rows, q * q)
    return Design(n_configs, z, zz, np.asarray(kind), x is not None, has_theta)


def strongly_connected(
    n_configs: int, first: np.ndarray, second: np.ndarray, kind: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Whether the 'beat-or-tied' graph of each weighting is strongly connected (the ML estimate of s exists).

    Edge i -> j when i was preferred to j at least once; a tie gives both edges (Zermelo/Ford condition,
    extended to ties because a tie penalises separating the two in either direction). ``weights`` is (R,) or
    (B, R); the answer has shape () or (B,).
    """
    weights = np.asarray(weights, dtype=float)
    rows = np.arange(len(kind))
    edges = np.zeros((len(kind), n_configs * n_configs))
    forward, backward = kind != KIND_B, kind != KIND_A
    edges[rows[forward], (first * n_configs + second)[forward]] = 1.0
    edges[rows[backward], (second * n_configs + first)[backward]] = 1.0
    present = (weights > 0).astype(float)
    reach = ((present @ edges) > 0).reshape(*weights.shape[:-1], n_configs, n_configs) | np.eye(n_configs, dtype=bool)
    # Squaring the reachability matrix doubles the path length covered; ceil(log2 n) squarings reach all paths.
    for _ in range(max(1, int(np.ceil(np.log2(n_configs))))):
        as_float = reach.astype(float)
        reach = (as_float @ as_float) > 0
    return reach.all(axis=(-2, -1))


def _terms(
    design: Design, params: np.ndarray, weights: np.ndarray, l2: np.ndarray, *, derivatives: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Objective for each of the B problems, and optionally its gradient (B, p) and Hessian (B, p, p)."""
    n, q = design.n_configs, design.z.shape[1]
    phi = params[:, :q]
    u = phi @ design.z.T
    y_u = _Y_U[design.kind]
    is_tie = (design.kind == KIND_TIE).astype(float)
    # Factor out the larger of e^u, e^-u: two exponentials and one log per row instead of log-sum-exp twice,
    # which dominates the cost of bootstrapping the length-controlled fit.
    magnitude = np.abs(u)
    e_low = np.exp(-2.0 * magnitude)
    if design.has_theta:
        theta = params[:, q : q + 1]
        e_tie = np.exp(np.minimum(theta - magnitude, 700.0))
        target = u * y_u + theta * is_tie
    else:
        e_tie = 0.0
        target = u * y_u
    rest = e_low + e_tie
    lse = magnitude + np.log1p(rest)
    total = phi[:, :n].sum(axis=1)
    value = (weights * (lse - target)).sum(axis=1) + 0.5 * l2 * (phi**2).sum(axis=1) + 0.5 * total**2
    if not derivatives:
        return value, None, None
    p_high = 1.0 / (1.0 + rest)  # probability of the side u favours
    p_low = e_low * p_high
    diff = np.sign(u) * (p_high - p_low)  # P(a) - P(b)
    batch, p = params.shape[0], design.n_params
    grad = np.empty((batch, p))
    grad[:, :q] = (weights * (diff - y_u)) @ design.z + l2[:, None] * phi
    grad[:, :n] += total[:, None]
    hess = np.zeros((batch, p, p))
    hess[:, :q, :q] = ((weights * (p_high + p_low - diff**2)) @ design.zz).reshape(batch, q, q)
    hess[:, :q, :q] += l2[:, None, None] * np.eye(q)
    hess[:, :n, :n] += 1.0
    if design.has_theta:
        p3 = e_tie * p_high
        grad[:, q] = (weights * (p3 - is_tie)).sum(axis=1)
        cross = (weights * (-diff * p3)) @ design.z
        hess[:, :q, q] = cross
        hess[:, q, :q] = cross
        hess[:, q, q] = (weights * p3 * (1.0 - p3)).sum(axis=1)
    return value, grad, hess


def newton_fit(
    design: Design,
    weights: np.ndarray,
    l2: np.ndarray,
    *,
    init: np.ndarray | None = None,
    tol: float = 1e-11,
    max_iter: int = 200,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise the objective for each row of ``weights`` (B, R).

    Returns (params (B, p), Hessian at the solution (B, p, p), converged (B,)). Converged means the squared
    Newton decrement fell below ``tol``; a parameter drifting to infinity (theta when a resample has no tie)
    converges too, because its gradient vanishes as it drifts.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    batch = weights.shape[0]
    if init is None:
        params = np.zeros((batch, design.n_params))
        if design.has_theta:
            params[:, -1] = np.log(0.5)
    else:
        params = np.array(np.broadcast_to(init, (batch, design.n_params)), dtype=float)
    l2 = np.broadcast_to(np.asarray(l2, dtype=float), (batch,))
    done = np.zeros(batch, dtype=bool)
    for _ in range(max_iter):
        active = np.flatnonzero(~done)
        if active.size == 0:
            break
        x, w, lam = params[active], weights[active], l2[active]
        value, grad, hess = _terms(design, x, w, lam, derivatives=True)
        # A resample can leave a parameter unidentified (beta when its votes all have x = 0, theta drifting
        # to infinity); the tiny ridge keeps the solve defined without changing well-posed steps.
        diagonal = np.abs(np.diagonal(hess, axis1=1, axis2=2)).max(axis=1)
        ridge = 1e-10 * (1.0 + diagonal)[:, None, None] * np.eye(hess.shape[-1])
        step = np.linalg.solve(hess + ridge, -grad[..., None])[..., 0]
        decrement = -(grad * step).sum(axis=1)
        t = np.ones(active.size)
        for _ in range(50):
            trial, _, _ = _terms(design, x + t[:, None] * step, w, lam, derivatives=False)
            # The slack keeps rounding noise near the optimum from rejecting a good step.
            ok = trial <= value - 1e-4 * t * decrement + 1e-12 * np.abs(value)
            if ok.all():
                break
            t = np.where(ok, t, 0.5 * t)
        params[active] = x + t[:, None] * step
        done[active] = decrement < tol
    _, _, hess = _terms(design, params, weights, l2, derivatives=True)
    return params, hess, done


def covariance(hess: np.ndarray, n_configs: int) -> np.ndarray:
    """Inverse observed information for centred scores: P H^-1 P with P projecting out the common shift of s.

    The objective's Hessian includes the (sum s)^2 term; its inverse is H_lik^+ + J / n^2 along the shift
    direction, which the projection removes, leaving the Moore-Penrose inverse of the likelihood's Hessian.
    """
    p = hess.shape[-1]
    direction = np.zeros(p)
    direction[:n_configs] = 1.0
    projection = np.eye(p) - np.outer(direction, direction) / n_configs
    return projection @ np.linalg.pinv(hess, hermitian=True) @ projection
